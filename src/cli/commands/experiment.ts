// Placeholder until the issue that owns `atomlens experiment` lands; replaced wholesale by it.
import { CliError, type CommandSpec } from '../args.js';

export const spec: CommandSpec = {
  name: 'experiment',
  summary: 'not yet available',
  usage: 'atomlens experiment',
  options: {},
};

export async function run(): Promise<number> {
  throw new CliError('atomlens experiment is not implemented yet');
}

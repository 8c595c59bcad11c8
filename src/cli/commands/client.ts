// Placeholder until the issue that owns `atomlens client` lands; replaced wholesale by it.
import { CliError, type CommandSpec } from '../args.js';

export const spec: CommandSpec = {
  name: 'client',
  summary: 'not yet available',
  usage: 'atomlens client',
  options: {},
};

export async function run(): Promise<number> {
  throw new CliError('atomlens client is not implemented yet');
}

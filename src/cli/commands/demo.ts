// Placeholder until the issue that owns `atomlens demo` lands; replaced wholesale by it.
import { CliError, type CommandSpec } from '../args.js';

export const spec: CommandSpec = {
  name: 'demo',
  summary: 'not yet available',
  usage: 'atomlens demo',
  options: {},
};

export async function run(): Promise<number> {
  throw new CliError('atomlens demo is not implemented yet');
}

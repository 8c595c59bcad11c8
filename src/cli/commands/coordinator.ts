// Placeholder until the issue that owns `atomlens coordinator` lands; replaced wholesale by it.
import { CliError, type CommandSpec } from '../args.js';

export const spec: CommandSpec = {
  name: 'coordinator',
  summary: 'not yet available',
  usage: 'atomlens coordinator',
  options: {},
};

export async function run(): Promise<number> {
  throw new CliError('atomlens coordinator is not implemented yet');
}

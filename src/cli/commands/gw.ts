// Placeholder until the issue that owns `atomlens gw` lands; replaced wholesale by it.
import { CliError, type CommandSpec } from '../args.js';

export const spec: CommandSpec = {
  name: 'gw',
  summary: 'not yet available',
  usage: 'atomlens gw',
  options: {},
};

export async function run(): Promise<number> {
  throw new CliError('atomlens gw is not implemented yet');
}

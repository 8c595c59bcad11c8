// Placeholder until the issue that owns `atomlens status` lands; replaced wholesale by it.
import { CliError, type CommandSpec } from '../args.js';

export const spec: CommandSpec = {
  name: 'status',
  summary: 'not yet available',
  usage: 'atomlens status',
  options: {},
};

export async function run(): Promise<number> {
  throw new CliError('atomlens status is not implemented yet');
}

// Placeholder until the issue that owns `atomlens report` lands; replaced wholesale by it.
import { CliError, type CommandSpec } from '../args.js';

export const spec: CommandSpec = {
  name: 'report',
  summary: 'not yet available',
  usage: 'atomlens report',
  options: {},
};

export async function run(): Promise<number> {
  throw new CliError('atomlens report is not implemented yet');
}

// Checks the command lines written into deploy files (Dockerfile CMD, compose, Kubernetes args)
// against the option tables of the real `atomlens` commands, so a renamed flag breaks a test
// instead of a deployment.
import { expect } from 'vitest';
import type { CommandSpec } from '../../src/cli/args.js';
import { spec as clientSpec } from '../../src/cli/commands/client.js';
import { spec as coordinatorSpec } from '../../src/cli/commands/coordinator.js';
import { spec as workerSpec } from '../../src/cli/commands/worker.js';

/** The option table of an `atomlens` command that deploy files run. */
export function commandSpec(command: string): CommandSpec {
  const specs: Record<string, CommandSpec> = {
    coordinator: coordinatorSpec,
    client: clientSpec,
    worker: workerSpec,
  };
  const spec = specs[command];
  if (!spec) throw new Error(`deploy files run 'atomlens ${command}', which these tests do not know`);
  return spec;
}

/** Every --flag must be an option of the command; string options must be followed by a value. */
export function checkFlags(spec: CommandSpec, args: string[], where: string): void {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) continue;
    const [name, inline] = arg.slice(2).split('=', 2) as [string, string | undefined];
    const option = spec.options[name];
    expect(option, `${where}: 'atomlens ${spec.name}' has no option --${name}`).toBeDefined();
    if (option!.type === 'string' && inline === undefined) {
      const value = args[i + 1];
      expect(value !== undefined && !value.startsWith('--'), `${where}: --${name} needs a value`).toBe(true);
      i++;
    }
  }
}

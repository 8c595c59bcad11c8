#!/usr/bin/env node
// Entry point of the `atomlens` command. atomlens runs from its TypeScript sources through tsx
// (no build step to forget); see src/shared/runtime.ts for how workers and children do the same.
import { register } from 'tsx/esm/api';

register();
const { runMain } = await import('../src/cli/main.ts');
runMain();

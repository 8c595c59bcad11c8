// Worker-thread launcher used only when atomlens runs from its TypeScript sources (see
// runtime.ts's startWorker): Node 20 runs no module hooks in worker threads, so the .ts entry
// (process.argv[2]) is imported through tsx's API. Compiled atomlens (dist/) never loads this file.
import { tsImport } from 'tsx/esm/api';

const [entry] = process.argv.splice(2, 1);
if (!entry) throw new Error('dev-worker.mjs: the worker entry URL must be the first argv item');
await tsImport(entry, import.meta.url);

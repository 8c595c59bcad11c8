// Preloaded (node --import) into the demo's child processes: when the demo dies without stopping
// them — SIGKILL, a crash, a closed terminal — the pipe on the child's stdin reaches end-of-file,
// and the child sends itself SIGTERM, which the coordinator and client commands answer with their
// normal clean shutdown. Without this, a killed demo would leave a coordinator and lingering
// clients running forever.
//
// Worker threads inherit the process's execArgv, preloads included, and a worker's stdin is
// empty: watched there, it would end at once and stop the whole process. Main thread only.
import { isMainThread } from 'node:worker_threads';

if (isMainThread) {
  const stdin = process.stdin;
  const stop = () => process.kill(process.pid, 'SIGTERM');
  stdin.on('end', stop);
  stdin.on('error', stop);
  stdin.resume();
  // Reading stdin must not keep a child alive that has finished its work.
  (stdin as unknown as { unref?: () => void }).unref?.();
}

// Preloaded (node --import) into the demo's child processes: when the demo dies without stopping
// them — SIGKILL, a crash, a closed terminal — the pipe on the child's stdin reaches end-of-file,
// and the child sends itself SIGTERM, which the coordinator and client commands answer with their
// normal clean shutdown. Without this, a killed demo would leave a coordinator and lingering
// clients running forever.
const stdin = process.stdin;
const stop = () => process.kill(process.pid, 'SIGTERM');
stdin.on('end', stop);
stdin.on('error', stop);
stdin.resume();
// Reading stdin must not keep a child alive that has finished its work.
(stdin as unknown as { unref?: () => void }).unref?.();

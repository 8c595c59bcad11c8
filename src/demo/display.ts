// Live progress of `atomlens demo`. On a terminal: a table (one row per client: task, round,
// loss, accuracy, state) redrawn in place below the log lines, plus one line per federation
// round. Elsewhere (CI, pipes, tests): plain lines only, one per event worth keeping.
import type { ClientProgressEvent } from '../client/client.js';
import type { DemoClientPlan } from './scenario.js';

export type ClientState = 'starting' | 'training' | 'waiting' | 'done' | 'failed' | 'stopped';

export interface ClientRow {
  plan: DemoClientPlan;
  pid: number | undefined;
  state: ClientState;
  taskId: string | undefined;
  taskIndex: number;
  /** Round within this run for the current task (1-based, 0 before the first). */
  roundInRun: number;
  rounds: number;
  batch: number;
  batches: number;
  loss: number | undefined;
  accuracy: number | undefined;
  /** Distinct (task, round) uploads acknowledged. */
  uploads: number;
  expectedUploads: number;
  detail: string;
}

export interface Output {
  write(text: string): void;
  /** True for a terminal that understands cursor movement. */
  isTTY: boolean;
  columns?: number;
}

const pct = (v: number | undefined) => (v === undefined ? '–' : `${(v * 100).toFixed(1)}%`);
const num = (v: number | undefined, d = 4) => (v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(d));

export class DemoDisplay {
  readonly rows = new Map<string, ClientRow>();
  private drawnLines = 0;
  private footer = '';
  private redrawTimer: NodeJS.Timeout | undefined;
  private finished = false;
  private readonly uploaded = new Map<string, Set<string>>();

  constructor(
    private readonly out: Output,
    plans: readonly DemoClientPlan[],
    rounds: number,
  ) {
    for (const plan of plans) {
      this.rows.set(plan.id, {
        plan,
        pid: undefined,
        state: 'starting',
        taskId: undefined,
        taskIndex: 0,
        roundInRun: 0,
        rounds,
        batch: 0,
        batches: 0,
        loss: undefined,
        accuracy: undefined,
        uploads: 0,
        expectedUploads: plan.tasks.length * rounds,
        detail: plan.note,
      });
      this.uploaded.set(plan.id, new Set());
    }
  }

  /** A permanent line (above the live table on a terminal). */
  line(text: string): void {
    if (this.out.isTTY && !this.finished) {
      this.clear();
      this.out.write(`${text}\n`);
      this.draw();
    } else {
      this.out.write(`${text}\n`);
    }
  }

  /** A status line under the table on a terminal; a plain line elsewhere when `keep`. */
  status(text: string, keep: boolean): void {
    if (this.out.isTTY && !this.finished) {
      this.footer = text;
      this.scheduleDraw();
    } else if (keep) {
      this.out.write(`${text}\n`);
    }
  }

  setPid(clientId: string, pid: number): void {
    const row = this.rows.get(clientId);
    if (row) row.pid = pid;
  }

  setState(clientId: string, state: ClientState, detail?: string): void {
    const row = this.rows.get(clientId);
    if (!row) return;
    row.state = state;
    if (detail !== undefined) row.detail = detail;
    this.scheduleDraw();
  }

  /** Applies one `atomlens client --json` event. Returns true when it was a new upload. */
  clientEvent(clientId: string, event: ClientProgressEvent): boolean {
    const row = this.rows.get(clientId);
    if (!row) return false;
    const tag = `[${clientId}]`;
    let newUpload = false;
    switch (event.type) {
      case 'connected':
        if (event.reconnect) this.line(`${tag} reconnected to the coordinator`);
        if (!event.fingerprintMatch) this.line(`${tag} α fingerprint differs from the coordinator's`);
        break;
      case 'disconnected':
        this.line(`${tag} connection lost (${event.reason}); reconnecting`);
        break;
      case 'task-start':
        row.state = 'training';
        row.taskId = event.taskId;
        row.taskIndex = row.plan.tasks.indexOf(event.taskId) + 1;
        row.roundInRun = 0;
        row.detail = `${event.examples} training examples`;
        this.line(
          `${tag} task ${event.taskId} (${row.taskIndex}/${row.plan.tasks.length}): ${event.examples} examples, rounds ${event.firstRound}–${event.firstRound + event.rounds - 1}`,
        );
        break;
      case 'batch':
        row.batch = event.batch;
        row.batches = event.batches;
        row.loss = event.loss;
        break;
      case 'round':
        row.roundInRun++;
        row.loss = event.loss;
        row.accuracy = event.accuracy;
        row.batch = 0;
        if (!this.out.isTTY) {
          this.out.write(
            `${tag} task ${event.taskId} round ${event.round} (${row.roundInRun}/${row.rounds}): loss ${num(event.loss)}, accuracy ${pct(event.accuracy)}\n`,
          );
        }
        break;
      case 'uploaded': {
        const seen = this.uploaded.get(clientId)!;
        const key = `${event.taskId}#${event.round}`;
        if (!seen.has(key)) {
          seen.add(key);
          row.uploads = seen.size;
          newUpload = true;
          if (row.uploads >= row.expectedUploads) {
            row.state = 'waiting';
            row.detail = 'training done; answering probe requests';
          }
        }
        break;
      }
      case 'probe':
        this.line(
          event.ok
            ? `${tag} answered a probe request (task ${event.taskId}, ${event.layers.length} layers)`
            : `${tag} probe request failed: ${event.message ?? ''}`,
        );
        break;
      case 'done':
        row.state = event.summary.aborted ? 'stopped' : 'done';
        break;
      default:
        break;
    }
    this.scheduleDraw();
    return newUpload;
  }

  /** Federation rounds every live client has completed (uploads, capped at its plan). */
  completedFederationRounds(): number {
    let min = Number.POSITIVE_INFINITY;
    let any = false;
    for (const row of this.rows.values()) {
      if (row.state === 'failed' || row.state === 'stopped') continue;
      any = true;
      // A client with fewer rounds in its plan counts as complete for the later rounds.
      min = Math.min(min, row.uploads >= row.expectedUploads ? Number.POSITIVE_INFINITY : row.uploads);
    }
    if (!any) return 0;
    return Number.isFinite(min) ? min : this.totalFederationRounds();
  }

  totalFederationRounds(): number {
    return Math.max(0, ...[...this.rows.values()].map((r) => r.expectedUploads));
  }

  allTrained(): boolean {
    return [...this.rows.values()].every(
      (r) => r.uploads >= r.expectedUploads || r.state === 'failed' || r.state === 'stopped',
    );
  }

  /** The live table's lines (also used in tests). */
  tableLines(): string[] {
    const header = ['client', 'task', 'round', 'loss', 'accuracy', 'state'];
    const body = [...this.rows.values()].map((r) => {
      const task = r.taskId ? `${r.taskId} (${r.taskIndex}/${r.plan.tasks.length})` : r.plan.tasks.join('→');
      const training = r.state === 'training' && r.batches > 0 && r.batch > 0;
      const bar = training ? ` [${'#'.repeat(Math.round((r.batch / r.batches) * 10)).padEnd(10, '.')}]` : '';
      const round = r.taskId ? `${Math.min(r.roundInRun + (training ? 1 : 0), r.rounds)}/${r.rounds}` : '–';
      return [r.plan.id, task, round, num(r.loss), pct(r.accuracy), `${r.state}${bar}  ${r.detail}`];
    });
    const all = [header, ...body];
    const widths = header.map((_, c) => Math.max(...all.map((row) => row[c]!.length)));
    return all.map((row) =>
      row
        .map((cell, c) => (c === row.length - 1 ? cell : cell.padEnd(widths[c]!)))
        .join('  ')
        .trimEnd(),
    );
  }

  private scheduleDraw(): void {
    if (!this.out.isTTY || this.redrawTimer || this.finished) return;
    this.redrawTimer = setTimeout(() => {
      this.redrawTimer = undefined;
      this.clear();
      this.draw();
    }, 100);
  }

  private clear(): void {
    if (this.drawnLines > 0) this.out.write(`\x1b[${this.drawnLines}F\x1b[0J`);
    this.drawnLines = 0;
  }

  private draw(): void {
    const cols = Math.max(40, (this.out.columns || 120) - 1);
    const lines = [...this.tableLines(), ...(this.footer ? [this.footer] : [])].map((l) => l.slice(0, cols));
    this.out.write(`${lines.join('\n')}\n`);
    this.drawnLines = lines.length;
  }

  /** Stops redrawing and leaves the last table on screen (terminal); later calls do nothing. */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.redrawTimer) clearTimeout(this.redrawTimer);
    this.redrawTimer = undefined;
    if (this.out.isTTY) {
      this.clear();
      this.footer = '';
      this.draw();
      this.drawnLines = 0;
    }
  }
}

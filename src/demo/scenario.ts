// Who learns what in `atomlens demo`: a pure plan from (clients, tasks, rounds) to the
// `atomlens client` invocations, so the scenario can be tested without starting anything.
//
// The default (4 clients, 2 tasks) is chosen so that the report has something to say:
//   site-a  0-1 then 2-3   continual learning: α frozen, a new atom set per task (atom swapping)
//   site-b  0-1 then 2-3   continual too; site-a's peer on 2-3
//   site-c  0-1            IID share: 0-1 has three well-trained models to compare the odd one with
//   site-d  0-1 skewed     non-IID share (mostly one class, Dirichlet-drawn): the one expected to drift
// With 3 tasks, site-b learns 4-5 then 2-3 and site-c learns 4-5.
// Every model starts from the federation's shared atoms (initialAtomSeed in the template), as in a
// federation where the coordinator hands out one initial model, so differences between models come
// from the data and tasks they trained on, not from unrelated random initialisations.

/**
 * Split-MNIST tasks in the order the demo hands them out.
 * @internal exported for its tests
 */
export const DEMO_TASK_POOL = ['0-1', '2-3', '4-5', '6-7', '8-9'] as const;

/** Concentration of the skewed client's Dirichlet split (small = strongly non-IID). */
const SKEW_ALPHA = 0.3;
/**
 * The skewed client needs enough examples to train at all.
 * @internal exported for its tests
 */
export const SKEW_MIN_EXAMPLES = 150;

export type ClientRole = 'continual' | 'iid' | 'skewed';

export interface DemoClientPlan {
  /** Client id (site-a, site-b, …). */
  id: string;
  /** Tasks in learning order, e.g. ['0-1', '2-3']. */
  tasks: string[];
  role: ClientRole;
  /** --data-split for `atomlens client`. */
  split: string;
  /** Why this client is in the scenario, for the display. */
  note: string;
}

/** Examples per class (in the task's class order) that a --data-split gives a client. */
export type ShareCounter = (classes: number[], split: string) => number[];

export interface ScenarioOptions {
  clients: number;
  /** Task ids (each "a-b…"), at least one. */
  tasks: string[];
  /** How many examples a split yields (the client's own data code; injected for tests). */
  countShare: ShareCounter;
}

/**
 * A Dirichlet share of the task's classes that is clearly skewed yet big enough to train on.
 * Dirichlet draws are random (a share can hold almost nothing), so this tries the shares I/M of
 * a few partitions and keeps the most skewed one with at least SKEW_MIN_EXAMPLES examples.
 * @internal exported for its tests
 */
export function chooseSkewedSplit(
  classes: number[],
  countShare: ShareCounter,
): { split: string; counts: number[] } {
  let best: { split: string; counts: number[]; skew: number } | undefined;
  for (const shareCount of [4, 5, 6, 3, 8]) {
    for (let index = 1; index <= shareCount; index++) {
      const split = `dirichlet:${SKEW_ALPHA}:${index}/${shareCount}`;
      const counts = countShare(classes, split);
      const total = counts.reduce((a, b) => a + b, 0);
      if (total < SKEW_MIN_EXAMPLES) continue;
      const skew = Math.max(...counts) / total;
      if (!best || skew > best.skew + 1e-9) best = { split, counts, skew };
    }
    if (best && best.skew >= 0.9) break;
  }
  if (!best) {
    // No partition gave a usable skewed share: fall back to a mild one that always has data.
    const split = `dirichlet:2:1/2`;
    return { split, counts: countShare(classes, split) };
  }
  return { split: best.split, counts: best.counts };
}

/** Parses --tasks: a count (first N of DEMO_TASK_POOL) or an explicit list such as "0-1,2-3". */
export function parseDemoTasks(text: string): string[] {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) {
    const n = Number(trimmed);
    if (n < 1 || n > DEMO_TASK_POOL.length) {
      throw new Error(`--tasks as a count must be 1–${DEMO_TASK_POOL.length}, got ${n}`);
    }
    return DEMO_TASK_POOL.slice(0, n);
  }
  const tasks = trimmed.split(',').map((t) => t.trim());
  const seen = new Set<number>();
  for (const t of tasks) {
    if (!/^\d(-\d)+$/.test(t)) {
      throw new Error(
        `--tasks entry '${t}' is not a task: give a count (e.g. 3) or classes joined by '-', tasks by ',' (e.g. 0-1,2-3)`,
      );
    }
    for (const c of t.split('-').map(Number)) {
      if (seen.has(c)) throw new Error(`--tasks: class ${c} appears in more than one task`);
      seen.add(c);
    }
  }
  // The client CLI names a task by its sorted classes; use the same ids here.
  return tasks.map((t) =>
    t
      .split('-')
      .map(Number)
      .sort((a, b) => a - b)
      .join('-'),
  );
}

function clientId(i: number): string {
  return i < 26 ? `site-${String.fromCharCode(97 + i)}` : `site-${i + 1}`;
}

/**
 * IID shard numbers: every client gets I/N with the smallest I not taken by another learner of
 * any of its tasks, N = the most learners any task has. Learners of a task then hold disjoint
 * shards, and a task learned by one client alone is shared by fewer (bigger shards).
 * @internal exported for its tests
 */
export function assignShards(taskLists: readonly (readonly string[])[]): { index: number; of: number }[] {
  const learners = new Map<string, number>();
  for (const tasks of taskLists) for (const t of tasks) learners.set(t, (learners.get(t) ?? 0) + 1);
  let of = Math.max(1, ...learners.values());
  for (;;) {
    const taken = new Map<string, Set<number>>();
    const out: { index: number; of: number }[] = [];
    for (const tasks of taskLists) {
      let index = 1;
      while (tasks.some((t) => taken.get(t)?.has(index))) index++;
      for (const t of tasks) {
        if (!taken.has(t)) taken.set(t, new Set());
        taken.get(t)!.add(index);
      }
      out.push({ index, of });
    }
    if (out.every((s) => s.index <= of)) return out;
    // A chain of overlapping task lists needed more shard numbers than any one task has learners.
    of = Math.max(...out.map((s) => s.index));
  }
}

/**
 * The clients of a demo run (tasks t0, t1, t2, …):
 *   client 0        t0 → t1 (continual)
 *   client 1        t2 → t1 (continual; t0 → t1 with two tasks) — client 0's peer on t1
 *   clients 2…N-2   one task each, cycling over t2, t0 (so first tasks have peers)
 *   client N-1      t0 from a skewed share (N ≥ 3)
 * Training data: the IID clients hold disjoint shards of their tasks' classes (assignShards); the
 * skewed client takes a Dirichlet-proportioned share instead (drawn from the same pool, so it may
 * overlap the others' shards).
 */
export function planScenario(options: ScenarioOptions): DemoClientPlan[] {
  const { clients, tasks, countShare } = options;
  if (!Number.isInteger(clients) || clients < 1) throw new Error('the demo needs at least one client');
  if (tasks.length === 0) throw new Error('the demo needs at least one task');
  const n = clients;
  const [t0, t1, t2] = [tasks[0]!, tasks[1], tasks[2]];
  // Single-task clients cycle over the tasks that sit first in someone's list, so that each of
  // those tasks has a peer to compare with.
  const firstTasks = t2 !== undefined ? [t2, t0] : [t0];
  const plans: DemoClientPlan[] = [];
  for (let i = 0; i < n; i++) {
    const id = clientId(i);
    if (i === n - 1 && n >= 3) {
      const classes = t0.split('-').map(Number);
      const skewed = chooseSkewedSplit(classes, countShare);
      const mix = classes.map((c, k) => `${skewed.counts[k]}×${c}`).join(' + ');
      plans.push({
        id,
        tasks: [t0],
        role: 'skewed',
        split: skewed.split,
        note: `learns ${t0} from a skewed (non-IID) share: ${mix}`,
      });
    } else if (i <= 1 && t1 !== undefined) {
      // Continual learners: site-a t0 → t1; site-b (t2 or t0) → t1, its peer on t1.
      const first = i === 0 ? t0 : (t2 ?? t0);
      plans.push({
        id,
        tasks: [first, t1],
        role: 'continual',
        split: '',
        note: `learns ${first} then ${t1} (continual, atom swapping)`,
      });
    } else {
      const task = firstTasks[Math.max(0, i - 2) % firstTasks.length]!;
      plans.push({ id, tasks: [task], role: 'iid', split: '', note: `learns ${task} from an IID share` });
    }
  }
  const iid = plans.filter((p) => p.role !== 'skewed');
  const shards = assignShards(iid.map((p) => p.tasks));
  iid.forEach((p, k) => {
    const { index, of } = shards[k]!;
    p.split = of === 1 ? 'all' : `iid:${index}/${of}`;
  });
  return plans;
}

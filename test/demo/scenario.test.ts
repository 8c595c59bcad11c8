// The demo's scenario: who learns what, from which share of the data. The properties the demo
// relies on are checked for many (clients, tasks) combinations, not only the default.
import { describe, expect, it } from 'vitest';
import {
  assignShards,
  chooseSkewedSplit,
  DEMO_TASK_POOL,
  parseDemoTasks,
  planScenario,
  type ShareCounter,
  SKEW_MIN_EXAMPLES,
} from '../../src/demo/scenario.js';

/** A counter that needs no MNIST: a Dirichlet share I/M holds 300 examples, 90 % of them class 0 when I = M. */
const fakeCounter: ShareCounter = (classes, split) => {
  const m = /^dirichlet:[\d.]+:(\d+)\/(\d+)$/.exec(split);
  if (!m) return classes.map(() => 100);
  const [index, of] = [Number(m[1]), Number(m[2])];
  if (index === of && of === 5) return classes.map((_, k) => (k === 0 ? 270 : 30));
  if (index === 1) return classes.map(() => 20); // too small to train on
  return classes.map((_, k) => (k === 0 ? 120 : 80));
};

describe('parseDemoTasks', () => {
  it('takes a count or a list, and normalises class order', () => {
    expect(parseDemoTasks('2')).toEqual(['0-1', '2-3']);
    expect(parseDemoTasks('5')).toEqual([...DEMO_TASK_POOL]);
    expect(parseDemoTasks('1-0, 3-2-4')).toEqual(['0-1', '2-3-4']);
  });
  it('refuses bad input with a message that shows the syntax', () => {
    expect(() => parseDemoTasks('0')).toThrow(/count must be 1–5/);
    expect(() => parseDemoTasks('6')).toThrow(/count must be 1–5/);
    expect(() => parseDemoTasks('0-1,1-2')).toThrow(/class 1 appears in more than one task/);
    expect(() => parseDemoTasks('a-b')).toThrow(/e\.g\. 0-1,2-3/);
  });
});

describe('assignShards', () => {
  it('gives the learners of every task distinct shard numbers within 1..N', () => {
    const lists = [['0-1', '2-3'], ['0-1', '2-3'], ['0-1'], ['4-5', '2-3'], ['4-5']];
    const shards = assignShards(lists);
    const of = shards[0]!.of;
    expect(shards.every((s) => s.of === of && s.index >= 1 && s.index <= of)).toBe(true);
    for (const task of ['0-1', '2-3', '4-5']) {
      const used = lists.flatMap((l, i) => (l.includes(task) ? [shards[i]!.index] : []));
      expect(new Set(used).size).toBe(used.length);
    }
    // 2-3 has three learners, so N is at least 3.
    expect(of).toBeGreaterThanOrEqual(3);
  });
  it('gives a lone learner the whole pool', () => {
    expect(assignShards([['0-1'], ['2-3']])).toEqual([
      { index: 1, of: 1 },
      { index: 1, of: 1 },
    ]);
  });
});

describe('chooseSkewedSplit', () => {
  it('keeps the most skewed share that is big enough', () => {
    const chosen = chooseSkewedSplit([0, 1], fakeCounter);
    expect(chosen.split).toBe('dirichlet:0.3:5/5');
    expect(chosen.counts).toEqual([270, 30]);
  });
  it('falls back to a mild share when every Dirichlet share is too small', () => {
    const tiny: ShareCounter = (classes, split) =>
      classes.map(() => (split.startsWith('dirichlet:0.3') ? SKEW_MIN_EXAMPLES / 4 : 200));
    expect(chooseSkewedSplit([0, 1], tiny).split).toBe('dirichlet:2:1/2');
  });
});

describe('planScenario', () => {
  it('the default: two continual learners, an IID and a skewed client on 0-1', () => {
    const plans = planScenario({ clients: 4, tasks: parseDemoTasks('2'), countShare: fakeCounter });
    expect(plans.map((p) => [p.id, p.tasks.join(','), p.role])).toEqual([
      ['site-a', '0-1,2-3', 'continual'],
      ['site-b', '0-1,2-3', 'continual'],
      ['site-c', '0-1', 'iid'],
      ['site-d', '0-1', 'skewed'],
    ]);
    expect(plans[3]!.split).toBe('dirichlet:0.3:5/5');
    expect(plans[3]!.note).toContain('270×0 + 30×1');
    // The three IID learners of 0-1 hold disjoint thirds.
    expect(plans.slice(0, 3).map((p) => p.split)).toEqual(['iid:1/3', 'iid:2/3', 'iid:3/3']);
  });

  it.each([
    [2, 1],
    [2, 2],
    [3, 2],
    [4, 3],
    [5, 3],
    [6, 5],
    [12, 4],
  ])(
    '%i clients, %i tasks: every task learned, learners of a task at the same list position',
    (clients, count) => {
      const tasks = parseDemoTasks(String(count));
      const plans = planScenario({ clients, tasks, countShare: fakeCounter });
      expect(plans).toHaveLength(clients);
      expect(new Set(plans.map((p) => p.id)).size).toBe(clients);
      // At least one client learns two tasks in sequence whenever there are two tasks.
      if (count >= 2) expect(plans.some((p) => p.tasks.length === 2)).toBe(true);
      if (clients >= 3) expect(plans.filter((p) => p.role === 'skewed')).toHaveLength(1);
      const learned = new Set(plans.flatMap((p) => p.tasks));
      // Tasks t0 and t1 are always learned; t2 when the pool has it and there is room.
      expect(learned.has(tasks[0]!)).toBe(true);
      if (count >= 2) expect(learned.has(tasks[1]!)).toBe(true);
      for (const task of learned) {
        const positions = new Set(
          plans.filter((p) => p.tasks.includes(task)).map((p) => p.tasks.indexOf(task)),
        );
        expect(positions.size, `task ${task} is learned at positions ${[...positions]}`).toBe(1);
      }
      for (const p of plans) expect(p.split).toMatch(/^(all|iid:\d+\/\d+|dirichlet:[\d.]+:\d+\/\d+)$/);
    },
  );
});

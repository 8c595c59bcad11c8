// The demo's progress display: client events in, the table and lines out; federation rounds
// counted across clients with different numbers of tasks; plain lines when not on a terminal,
// redraws in place on one.
import { describe, expect, it } from 'vitest';
import type { ClientProgressEvent } from '../../src/client/client.js';
import { DemoDisplay } from '../../src/demo/display.js';
import type { DemoClientPlan } from '../../src/demo/scenario.js';

const PLANS: DemoClientPlan[] = [
  { id: 'site-a', tasks: ['0-1', '2-3'], role: 'continual', split: 'iid:1/2', note: 'two tasks' },
  { id: 'site-b', tasks: ['0-1'], role: 'iid', split: 'iid:2/2', note: 'one task' },
];

function sink(isTTY: boolean) {
  const chunks: string[] = [];
  return { out: { write: (t: string) => chunks.push(t), isTTY, columns: 100 }, text: () => chunks.join('') };
}

const round = (taskId: string, r: number, loss: number, accuracy: number): ClientProgressEvent => ({
  type: 'round',
  taskId,
  round: r,
  loss,
  accuracy,
  trainAccuracy: accuracy,
  samples: 100,
  seconds: 1,
});
const uploaded = (taskId: string, r: number): ClientProgressEvent => ({
  type: 'uploaded',
  taskId,
  round: r,
  duplicate: false,
});

describe('DemoDisplay', () => {
  it('counts a federation round when every live client has uploaded it; shorter plans count as complete', () => {
    const s = sink(false);
    const d = new DemoDisplay(s.out, PLANS, 2);
    expect(d.totalFederationRounds()).toBe(4);
    expect(d.clientEvent('site-a', uploaded('0-1', 1))).toBe(true);
    expect(d.completedFederationRounds()).toBe(0);
    expect(d.clientEvent('site-b', uploaded('0-1', 1))).toBe(true);
    expect(d.completedFederationRounds()).toBe(1);
    // A re-sent round (after a reconnect) is not a new upload.
    expect(d.clientEvent('site-b', { ...uploaded('0-1', 1), duplicate: true } as ClientProgressEvent)).toBe(
      false,
    );
    d.clientEvent('site-b', uploaded('0-1', 2));
    d.clientEvent('site-a', uploaded('0-1', 2));
    expect(d.completedFederationRounds()).toBe(2);
    // site-b has finished its plan; only site-a's second task is left.
    d.clientEvent('site-a', uploaded('2-3', 1));
    expect(d.completedFederationRounds()).toBe(3);
    expect(d.allTrained()).toBe(false);
    d.clientEvent('site-a', uploaded('2-3', 2));
    expect(d.allTrained()).toBe(true);
    expect(d.completedFederationRounds()).toBe(4);
  });

  it('a failed client no longer holds the federation back', () => {
    const d = new DemoDisplay(sink(false).out, PLANS, 2);
    d.clientEvent('site-a', uploaded('0-1', 1));
    expect(d.completedFederationRounds()).toBe(0);
    d.setState('site-b', 'failed', 'exited with 1');
    expect(d.completedFederationRounds()).toBe(1);
    expect(d.allTrained()).toBe(false);
  });

  it('prints plain lines off a terminal: task starts and rounds with loss and accuracy', () => {
    const s = sink(false);
    const d = new DemoDisplay(s.out, PLANS, 2);
    d.clientEvent('site-a', { type: 'task-start', taskId: '2-3', firstRound: 1, rounds: 2, examples: 700 });
    d.clientEvent('site-a', round('2-3', 1, 0.5, 0.875));
    d.clientEvent('site-a', { type: 'batch', taskId: '2-3', round: 2, batch: 3, batches: 10, loss: 0.4 });
    d.finish();
    expect(s.text()).toBe(
      '[site-a] task 2-3 (2/2): 700 examples, rounds 1–2\n' +
        '[site-a] task 2-3 round 1 (1/2): loss 0.5000, accuracy 87.5%\n',
    );
    expect(s.text()).not.toContain('\x1b[');
    const table = d.tableLines();
    expect(table[0]).toMatch(/^client\s+task\s+round\s+loss\s+accuracy\s+state$/);
    expect(table[1]).toMatch(/^site-a\s+2-3 \(2\/2\)\s+2\/2\s+0\.4000\s+87\.5%\s+training \[###\.{7}\]/);
    expect(table[2]).toMatch(/^site-b\s+0-1\s+–\s+–\s+–\s+starting/);
  });

  it('redraws the table in place on a terminal and keeps permanent lines above it', () => {
    const s = sink(true);
    const d = new DemoDisplay(s.out, PLANS, 2);
    d.line('first');
    d.line('second');
    const text = s.text();
    // The second line first moves the cursor up over the 3-line table drawn after 'first'.
    expect(text.startsWith('first\n')).toBe(true);
    expect(text).toContain('\x1b[3F\x1b[0Jsecond\n');
    d.finish();
    d.line('after finish');
    expect(s.text().endsWith('after finish\n')).toBe(true);
  });
});

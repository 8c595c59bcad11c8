// Renders a real report page in headless Chromium: the figures and the block table must be
// there and laid out, and the page must not make a single network request.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { renderReportHtml } from '../../src/analysis/report/html.js';
import { buildSyntheticReport } from './synthetic-report.js';

const CHROMIUM = '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium) console.warn(`skipping the headless-Chromium report test: ${CHROMIUM} is not installed`);

interface Box {
  w: number;
  h: number;
}
interface PageFacts {
  title: string;
  gwHeatmaps: Box[];
  atomHeatmaps: Box[];
  gwCells: number;
  boundaries: number;
  blockRows: (string | null)[];
  blockTable: Box;
  scatterPoints: number;
  missing: string;
  trigger: string;
  verdict: string[];
  distanceScales: string[];
}

describe('HTML report in headless Chromium', () => {
  it.skipIf(!hasChromium)('shows heatmaps and the block table without any network request', async () => {
    const html = renderReportHtml(await buildSyntheticReport());
    const userDataDir = mkdtempSync(join(tmpdir(), 'atomlens-chromium-'));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    try {
      const requests: string[] = [];
      context.on('request', (r) => requests.push(r.url()));
      // Anything the page tries to fetch is recorded above and refused here.
      await context.route('**/*', (route) => route.abort());
      const page = context.pages()[0] ?? (await context.newPage());
      await page.setContent(html, { waitUntil: 'load' });
      // A string so that this Node-typed file needs no DOM typings; it runs in the page.
      const seen = (await page.evaluate(`(() => {
        const box = (el) => { const r = el.getBoundingClientRect(); return { w: r.width, h: r.height }; };
        const q = (sel) => Array.from(document.querySelectorAll(sel));
        return {
          title: document.title,
          gwHeatmaps: q('svg.heatmap[data-kind="gw-layers"]').map(box),
          atomHeatmaps: q('svg.heatmap[data-kind="atom-similarity"]').map(box),
          gwCells: q('svg.heatmap[data-kind="gw-layers"] rect.cell').length,
          boundaries: q('svg.heatmap[data-kind="gw-layers"] rect.block-boundary').length,
          blockRows: q('#block-table tr.block-row').map((r) => r.getAttribute('data-label')),
          blockTable: box(document.querySelector('#block-table')),
          scatterPoints: q('svg.scatter circle.point').length,
          missing: document.querySelector('#missing')?.textContent ?? '',
          trigger: document.querySelector('#trigger + p')?.textContent ?? '',
          verdict: q('#verdict li').map((e) => e.textContent),
          distanceScales: q('svg.heatmap[data-kind^="gw-layers"], svg.heatmap[data-kind="cross-gw"]').map((e) => e.getAttribute('data-max')),
        };
      })()`)) as PageFacts;
      await page.screenshot({ path: join(tmpdir(), 'atomlens-report-test.png'), fullPage: true });
      expect(requests).toEqual([]);
      expect(seen.title).toContain('rep-synthetic-1');
      expect(seen.gwHeatmaps).toHaveLength(3);
      for (const b of [...seen.gwHeatmaps, ...seen.atomHeatmaps]) {
        expect(b.w).toBeGreaterThan(100);
        expect(b.h).toBeGreaterThan(100);
      }
      expect(seen.atomHeatmaps).toHaveLength(1);
      expect(seen.gwCells).toBe(3 * 64);
      expect(seen.boundaries).toBe(9);
      expect(seen.blockRows).toEqual(['shared', 'shared', 'client-specific']);
      expect(seen.blockTable.h).toBeGreaterThan(50);
      expect(seen.scatterPoints).toBe(24);
      expect(seen.missing).toContain('dave/2-3');
      expect(seen.trigger).toContain('divergence');
      // The verdict is rendered first, and every distance heatmap uses one colour scale.
      expect(seen.verdict[0]).toMatch(/^Triggered by the divergence signal/);
      expect(seen.verdict.some((v) => v.startsWith('The probe analysis confirms it: bob/0-1'))).toBe(true);
      expect(seen.distanceScales.length).toBeGreaterThan(6);
      expect(new Set(seen.distanceScales).size).toBe(1);

      // Control: the same recording does see a page that fetches something.
      const leaky = await context.newPage();
      await leaky.setContent(html.replace('</main>', '<img src="http://192.0.2.1/x.png"></main>'), {
        waitUntil: 'load',
      });
      expect(requests).toEqual(['http://192.0.2.1/x.png']);
    } finally {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    }
  });
});

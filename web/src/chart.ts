// Small SVG charts drawn from shaped data (logic.ts): a time-series line
// chart and a heat map. No chart library: both are a few dozen elements,
// and the page's Content-Security-Policy allows nothing from elsewhere.
import { h, s } from './dom';
import { formatCount, niceMax, type HeatCell, type Series } from './logic';

const colours = ['#0b63c5', '#c2410c', '#15803d', '#7c3aed', '#be123c', '#0e7490', '#a16207'];

/** lineChart draws series over x (epoch seconds) with a legend and axes. */
export function lineChart(title: string, x: number[], series: Series[], format: (v: number) => string = formatCount): HTMLElement {
  const W = 720, H = 220, L = 56, R = 12, T = 12, B = 28;
  const all = series.flatMap((se) => se.values.filter((v): v is number => v != null));
  const top = niceMax(Math.max(0, ...all));
  const x0 = x[0] ?? 0, x1 = x[x.length - 1] ?? 1;
  const px = (t: number) => L + ((t - x0) / Math.max(x1 - x0, 1)) * (W - L - R);
  const py = (v: number) => T + (1 - v / top) * (H - T - B);
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': `${title}: ${series.map((se) => `${se.label} now ${format(last(se.values))}`).join(', ')}` });
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    svg.append(s('line', { x1: L, x2: W - R, y1: py(v), y2: py(v), class: 'grid-line' }), s('text', { x: L - 6, y: py(v) + 4, 'text-anchor': 'end', class: 'tick' }, format(v)));
  }
  for (let i = 0; i <= 4 && x.length > 1; i++) {
    const t = x0 + ((x1 - x0) * i) / 4;
    svg.append(s('text', { x: px(t), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', class: 'tick' }, new Date(t * 1000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })));
  }
  series.forEach((se, k) => {
    let d = '';
    let pen = false;
    se.values.forEach((v, i) => {
      if (v == null) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${px(x[i]).toFixed(1)},${py(v).toFixed(1)}`;
      pen = true;
    });
    if (x.length === 1 && se.values[0] != null) svg.append(s('circle', { cx: L + 4, cy: py(se.values[0]!), r: 3, fill: colours[k % colours.length] }));
    svg.append(s('path', { d, fill: 'none', stroke: colours[k % colours.length], 'stroke-width': k === 0 ? 2 : 1.5 }));
  });
  const legend = h(
    'ul',
    { class: 'legend' },
    ...series.map((se, k) => h('li', {}, h('span', { class: 'swatch', style: `background:${colours[k % colours.length]}` }), `${se.label}: ${format(last(se.values))}`)),
  );
  return h('figure', { class: 'chart-box', 'data-points': String(x.length) }, h('figcaption', {}, title), svg, legend);
}

function last(vs: (number | null)[]): number {
  for (let i = vs.length - 1; i >= 0; i--) if (vs[i] != null) return vs[i]!;
  return NaN;
}

/** heatMap draws rows of partition cells shaded by level (0..1). */
export function heatMap(title: string, rows: { label: string; cells: HeatCell[] }[]): HTMLElement {
  const table = h(
    'table',
    { class: 'heat' },
    h('caption', {}, title),
    h(
      'tbody',
      {},
      ...rows.map((r) =>
        h(
          'tr',
          {},
          h('th', { scope: 'row' }, r.label),
          ...r.cells.map((c) =>
            h(
              'td',
              {
                style: `background: rgba(179, 38, 30, ${(0.08 + 0.85 * c.level).toFixed(2)}); color: ${c.level > 0.55 ? '#fff' : 'inherit'}`,
                title: `partition ${c.partition}: lag ${c.lag}`,
                'aria-label': `partition ${c.partition}: lag ${c.lag}`,
              },
              String(c.partition),
            ),
          ),
        ),
      ),
    ),
  );
  return h('div', { class: 'heat-box' }, table);
}

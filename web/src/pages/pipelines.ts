// The pipelines list with status, and a pipeline's page: health, lag over
// time per stage, lag per partition, the skew heat map, hot keys and state
// restores, refreshed every 10 seconds.
import { api, ApiError, type List } from '../api';
import { h, alert, errorText, projectPath, onLeave, time } from '../dom';
import { lineChart, heatMap } from '../chart';
import { dlqSection, previewSettings } from '../dlq';
import {
  formatCount,
  formatDuration,
  heatRows,
  lagSeries,
  pipelineRows,
  type DeploymentItem,
  type LagPoint,
  type PipelineItem,
  type StageLagItem,
} from '../logic';

export async function renderPipelines(main: HTMLElement): Promise<void> {
  main.className = 'page pipelines-page';
  main.append(h('h1', {}, 'Pipelines'), h('p', { class: 'muted' }, 'Loading…'));
  try {
    const [pipelines, deployments, fleets] = await Promise.all([
      api.get<List<PipelineItem>>(projectPath('/pipelines?limit=200')),
      api.get<List<DeploymentItem>>(projectPath('/deployments?limit=200')),
      api.get<List<{ id: string; name: string }>>(projectPath('/fleets?limit=200')),
    ]);
    const names = Object.fromEntries(fleets.items.map((f) => [f.id, f.name]));
    const rows = pipelineRows(pipelines.items, deployments.items, names);
    if (rows.length === 0) {
      main.replaceChildren(h('h1', {}, 'Pipelines'), h('p', { class: 'empty' }, 'No pipelines yet: add one under pipelines/ in the editor and commit it.'), await previewSettings());
      return;
    }
    const table = h(
      'table',
      { class: 'pipelines grid' },
      h('caption', {}, 'Pipelines of the project and where they run'),
      h('thead', {}, h('tr', {}, ...['Pipeline', 'Revision', 'Status', 'Fleets'].map((c) => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        {},
        ...rows.map((r) =>
          h(
            'tr',
            {},
            h('th', { scope: 'row' }, h('a', { href: '#/pipelines/' + r.id }, r.name)),
            h('td', {}, r.latestRevision ? String(r.latestRevision) : '–'),
            h('td', {}, h('span', { class: 'badge ' + r.status.replace(/\s/g, '') }, r.status)),
            h('td', {}, r.deployments.map((d) => `${d.fleet}: revision ${d.revision}, ${d.status}${d.message ? ' (' + d.message + ')' : ''}`).join('; ') || '–'),
          ),
        ),
      ),
    );
    main.replaceChildren(h('h1', {}, 'Pipelines'), table, await previewSettings());
  } catch (e) {
    main.replaceChildren(h('h1', {}, 'Pipelines'), alert('Cannot list the pipelines: ' + errorText(e)));
  }
}

interface Lag {
  pipeline: string;
  current: { sampled_at: string; status: string; event_age_ms: number; stages: StageLagItem[] } | null;
  stale: boolean;
  runners: { name: string; live: boolean; state: string; partitions: number[] }[];
  history: LagPoint[];
}

interface Skew {
  sampled_at?: string;
  stages: { stage: number; topic: string; lag_skew: number; rate_skew: number; max_lag_partition: number; flagged: { partition: number; reasons: string[] }[] }[];
  runners: { runner: string; partitions: number; consume_rate: number }[];
  runner_imbalance: number;
  hot_keys: { hash: string; stage: number; topic: string; partition: number; runner?: string; count: number; share: number }[];
  key_previews?: Record<string, { text: string; truncated?: boolean }>;
}

interface Health {
  status: string;
  healthy: boolean;
  stale: boolean;
  live_runners: number;
  event_age_ms: number;
  slowest?: { stage: number; topic: string; status: string; reason: string };
  stages: { stage: number; topic: string; status: string; lag: number; max_time_lag_ms: number; reason?: string }[];
  restoring: { runner?: string; step: string; partition: number; restoring: boolean; done: number; total: number; rate: number; eta_seconds: number }[];
}

export async function renderPipeline(main: HTMLElement, id: string): Promise<void> {
  main.className = 'page pipeline-page';
  const title = h('h1', {}, 'Pipeline');
  const body = h('div', { id: 'pipeline-body' }, h('p', { class: 'muted' }, 'Loading…'));
  main.append(h('p', {}, h('a', { href: '#/pipelines' }, '← All pipelines')), title, body);
  const dlqBox = h('div', { id: 'pipeline-dlq' });
  main.append(dlqBox);
  let p: PipelineItem;
  try {
    p = await api.get<PipelineItem>(projectPath('/pipelines/' + id));
  } catch (e) {
    body.replaceChildren(alert(e instanceof ApiError && e.status === 404 ? 'No such pipeline in this project.' : 'Cannot read the pipeline: ' + errorText(e)));
    return;
  }
  title.textContent = `Pipeline ${p.name}`;
  const base = projectPath('/pipelines/' + id);
  dlqBox.append(dlqSection(base));
  const draw = async () => {
    let lag: Lag, skew: Skew, health: Health;
    try {
      [lag, skew, health] = await Promise.all([api.get<Lag>(base + '/lag'), api.get<Skew>(base + '/skew'), api.get<Health>(base + '/health')]);
    } catch (e) {
      body.replaceChildren(alert('Cannot read the pipeline’s lag: ' + errorText(e)));
      return;
    }
    body.replaceChildren(...pipelineView(lag, skew, health));
  };
  await draw();
  const timer = window.setInterval(() => void draw(), 10_000);
  onLeave(() => window.clearInterval(timer));
}

function pipelineView(lag: Lag, skew: Skew, health: Health): Node[] {
  const out: Node[] = [];
  const stat = (label: string, value: Node | string, id: string) => h('div', { class: 'stat-card', id }, h('div', { class: 'label' }, label), h('div', { class: 'value' }, value));
  out.push(
    h(
      'div',
      { class: 'stats' },
      stat('Lag status', h('span', { class: 'badge ' + health.status }, health.status + (health.stale ? ' (stale)' : '')), 'health-status'),
      stat('End-to-end age', health.event_age_ms ? formatDuration(health.event_age_ms) : '–', 'event-age'),
      stat('Slowest stage', health.slowest ? `stage ${health.slowest.stage} (${health.slowest.topic})` : '–', 'slowest'),
      stat('Live runners', String(health.live_runners), 'live-runners'),
    ),
  );
  if (health.slowest?.reason) out.push(h('p', { class: 'muted' }, `Slowest: ${health.slowest.reason}`));
  if (!lag.current && lag.history.length === 0) {
    out.push(
      h(
        'p',
        { class: 'empty', id: 'lag-empty' },
        'No runner has reported lag for this pipeline yet: deploy it to a fleet with a running runner, and its lag shows here within seconds.',
      ),
    );
  }
  if (lag.history.length) {
    const shaped = lagSeries(lag.history);
    out.push(
      h(
        'section',
        { 'aria-labelledby': 'lag-title' },
        h('h2', { id: 'lag-title' }, 'Lag over time'),
        lineChart('Records behind, per stage', shaped.x, shaped.series),
        lineChart('End-to-end event age', shaped.x, [shaped.age], (v) => formatDuration(v)),
      ),
    );
  }
  const stages = lag.current?.stages ?? [];
  if (stages.some((s) => s.partitions?.length)) {
    out.push(
      h(
        'section',
        { 'aria-labelledby': 'part-title' },
        h('h2', { id: 'part-title' }, 'Lag per partition now'),
        heatMap('Partitions by stage, darker is further behind', heatRows(stages)),
        h(
          'table',
          { class: 'grid compact', id: 'partition-lag' },
          h('caption', { class: 'sr-only' }, 'Lag per stage and partition'),
          h('thead', {}, h('tr', {}, ...['Stage', 'Partition', 'Status', 'Lag', 'Time lag'].map((c) => h('th', { scope: 'col' }, c)))),
          h(
            'tbody',
            {},
            ...stages.flatMap((s) =>
              (s.partitions ?? []).map((pt) =>
                h(
                  'tr',
                  {},
                  h('td', {}, `${s.stage} (${s.topic})`),
                  h('td', {}, String(pt.partition)),
                  h('td', {}, pt.status ?? ''),
                  h('td', {}, formatCount(pt.lag)),
                  h('td', {}, pt.time_lag_ms != null ? formatDuration(pt.time_lag_ms) : '–'),
                ),
              ),
            ),
          ),
        ),
      ),
    );
  }
  if (skew.stages?.length) {
    out.push(
      h(
        'section',
        { 'aria-labelledby': 'skew-title' },
        h('h2', { id: 'skew-title' }, 'Skew'),
        h('p', { class: 'muted' }, `Runner imbalance ${skew.runner_imbalance.toFixed(2)} (1 is even).`),
        h(
          'table',
          { class: 'grid compact' },
          h('thead', {}, h('tr', {}, ...['Stage', 'Lag skew', 'Rate skew', 'Most behind', 'Flagged'].map((c) => h('th', { scope: 'col' }, c)))),
          h(
            'tbody',
            {},
            ...skew.stages.map((s) =>
              h(
                'tr',
                {},
                h('td', {}, `${s.stage} (${s.topic})`),
                h('td', {}, s.lag_skew.toFixed(2)),
                h('td', {}, s.rate_skew.toFixed(2)),
                h('td', {}, `partition ${s.max_lag_partition}`),
                h('td', {}, s.flagged.map((f) => `${f.partition}: ${f.reasons.join(', ')}`).join('; ') || '–'),
              ),
            ),
          ),
        ),
      ),
    );
  }
  out.push(
    h(
      'section',
      { 'aria-labelledby': 'hot-title' },
      h('h2', { id: 'hot-title' }, 'Hot keys'),
      skew.hot_keys?.length
        ? h(
            'table',
            { class: 'grid compact', id: 'hot-keys' },
            h('thead', {}, h('tr', {}, ...[skew.key_previews ? 'Key (preview and hash)' : 'Key (hash)', 'Stage', 'Partition', 'Runner', 'Records', 'Share'].map((c) => h('th', { scope: 'col' }, c)))),
            h(
              'tbody',
              {},
              ...skew.hot_keys.map((k) =>
                h(
                  'tr',
                  {},
                  h(
                    'td',
                    {},
                    skew.key_previews?.[k.hash] ? h('code', { class: 'preview' }, skew.key_previews[k.hash].text + (skew.key_previews[k.hash].truncated ? '…' : ''), ' ') : '',
                    h('code', { class: 'muted' }, k.hash),
                  ),
                  h('td', {}, `${k.stage} (${k.topic})`),
                  h('td', {}, String(k.partition)),
                  h('td', {}, k.runner ?? '–'),
                  h('td', {}, formatCount(k.count)),
                  h('td', {}, (k.share * 100).toFixed(1) + ' %'),
                ),
              ),
            ),
          )
        : h('p', { class: 'muted' }, 'No hot key reported: no key takes an outsized share of a partition.'),
    ),
  );
  out.push(
    h(
      'section',
      { 'aria-labelledby': 'restore-title' },
      h('h2', { id: 'restore-title' }, 'State restore'),
      health.restoring?.length
        ? h(
            'ul',
            { class: 'restores' },
            ...health.restoring.map((r) =>
              h(
                'li',
                {},
                `${r.step}, partition ${r.partition}${r.runner ? ' on ' + r.runner : ''}: `,
                h('progress', { max: String(Math.max(r.total, 1)), value: String(r.done), 'aria-label': `restore of ${r.step} partition ${r.partition}` }),
                ` ${formatCount(r.done)} of ${formatCount(r.total)}`,
                r.eta_seconds > 0 ? `, about ${formatDuration(r.eta_seconds * 1000)} left` : '',
              ),
            ),
          )
        : h('p', { class: 'muted' }, 'No state store is restoring.'),
    ),
  );
  if (lag.runners.length) {
    out.push(
      h(
        'section',
        { 'aria-labelledby': 'prunners-title' },
        h('h2', { id: 'prunners-title' }, 'Runners'),
        h(
          'ul',
          {},
          ...lag.runners.map((r) => h('li', {}, `${r.name}: ${r.live ? 'live' : 'not reporting'}, ${r.state || 'no state'}, partitions ${r.partitions.join(', ') || 'none'}`)),
        ),
        lag.current ? h('p', { class: 'muted' }, 'Sampled ', time(lag.current.sampled_at)) : '',
      ),
    );
  }
  return out;
}

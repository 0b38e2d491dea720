// Fleets: each fleet's runners and their health, its Terraform runs, and
// create / scale / destroy, each planned first: the plan summary is shown
// for review and applied only when approved. Run logs stream live.
import { api, ApiError, type List } from '../api';
import { h, alert, errorText, projectPath, stream, time } from '../dom';
import { fleetSize, formatAgo } from '../logic';

interface Fleet {
  id: string;
  name: string;
  module: string;
  runners: number;
  status: string;
  rollout: { strategy: string; bake_seconds: number; max_dlq_ratio: number };
}

interface Runner {
  id: string;
  name: string;
  version: string;
  last_seen_at: string;
  live: boolean;
  generation: number;
  revoked: boolean;
  report?: { pipelines?: { name?: string; pipeline?: string; state?: string }[] };
}

interface Run {
  number: number;
  reason: string;
  destroy: boolean;
  runners: number;
  state: string;
  phase: string;
  plan: { add: number; change: number; destroy: number; changes: { address: string; action: string }[]; text: string } | null;
  progress: { done: number; total: number };
  error?: string;
  error_kind?: string;
  requested_by: string;
  approved_by?: string;
  created_at: string;
  finished_at?: string;
}

const open = new Set(['queued', 'planning', 'planned', 'approved', 'applying']);

export async function renderFleets(main: HTMLElement): Promise<void> {
  main.className = 'page fleets-page';
  const list = h('div', { id: 'fleets' }, h('p', { class: 'muted' }, 'Loading…'));
  main.append(
    h('h1', {}, 'Fleets'),
    h('p', { class: 'muted' }, 'A fleet is a set of runners provisioned by Terraform. Every change is planned first: review the plan, then approve or discard it.'),
    createForm(() => void load()),
    list,
  );

  async function load(): Promise<void> {
    let fleets: Fleet[];
    try {
      fleets = (await api.get<List<Fleet>>(projectPath('/fleets?limit=200'))).items;
    } catch (e) {
      list.replaceChildren(alert('Cannot list the fleets: ' + errorText(e)));
      return;
    }
    if (fleets.length === 0) {
      list.replaceChildren(h('p', { class: 'empty' }, 'No fleet yet: create one above (local runs runners on the control plane’s host).'));
      return;
    }
    list.replaceChildren(...fleets.sort((a, b) => a.name.localeCompare(b.name)).map((f) => fleetCard(f, load)));
  }
  await load();
}

function createForm(created: () => void): HTMLElement {
  const name = h('input', { id: 'fleet-name', required: true, placeholder: 'edge', maxlength: '63' });
  const module = h('select', { id: 'fleet-module' }, ...['local', 'kubernetes', 'aws'].map((m) => h('option', { value: m }, m)));
  const runners = h('input', { id: 'fleet-runners', type: 'number', min: '0', max: '1000', value: '1' });
  // The module's Terraform variables; local needs the Kafka the runners share.
  const defaults: Record<string, string> = { local: '{"kafka_brokers": ["127.0.0.1:9092"]}', kubernetes: '{}', aws: '{}' };
  const settings = h('textarea', { id: 'fleet-settings', rows: '3', spellcheck: 'false', 'aria-describedby': 'fleet-settings-help' }, defaults.local);
  let touched = false;
  settings.addEventListener('input', () => (touched = true));
  module.addEventListener('change', () => {
    if (!touched) settings.value = defaults[module.value] ?? '{}';
  });
  const status = h('div', { role: 'status' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create and plan');
  return h(
    'details',
    { class: 'card', id: 'fleet-create' },
    h('summary', {}, 'New fleet'),
    h(
      'form',
      {
        class: 'form-grid',
        onsubmit: async (e: Event) => {
          e.preventDefault();
          status.replaceChildren();
          let vars: unknown;
          try {
            vars = JSON.parse(settings.value || '{}');
          } catch (e) {
            vars = undefined;
          }
          if (!vars || typeof vars !== 'object' || Array.isArray(vars)) {
            status.replaceChildren(alert('Settings must be a JSON object of the module’s variables, e.g. {"kafka_brokers": ["host:9092"]}.'));
            settings.focus();
            return;
          }
          submit.disabled = true;
          try {
            await api.post(projectPath('/fleets'), { name: name.value.trim(), module: module.value, runners: Number(runners.value), settings: vars });
            name.value = '';
            created();
          } catch (e) {
            status.replaceChildren(alert('The fleet was not created: ' + errorText(e)));
          } finally {
            submit.disabled = false;
          }
        },
      },
      h('label', { for: 'fleet-name' }, 'Name'),
      name,
      h('label', { for: 'fleet-module' }, 'Terraform module'),
      module,
      h('label', { for: 'fleet-runners' }, 'Runners'),
      runners,
      h('label', { for: 'fleet-settings' }, 'Settings (JSON)'),
      settings,
      h('span'),
      h('p', { id: 'fleet-settings-help', class: 'muted' }, 'The module’s Terraform variables; see provisioning/terraform/modules/<module>/README.md.'),
      h('span'),
      submit,
    ),
    status,
  );
}

function fleetCard(f: Fleet, reload: () => Promise<void>): HTMLElement {
  const runnersEl = h('div', {}, h('p', { class: 'muted' }, 'Loading runners…'));
  const runsEl = h('div', { class: 'runs' });
  const actionStatus = h('div', { role: 'status' });
  const size = h('input', { id: `scale-${f.id}`, type: 'number', min: '0', max: '1000', value: String(f.runners), size: '5' });
  const act = async (what: string, path: string, body?: unknown) => {
    actionStatus.replaceChildren(h('p', { class: 'muted' }, `${what}…`));
    try {
      const run = await api.post<Run>(projectPath(`/fleets/${f.id}${path}`), body ?? {});
      actionStatus.replaceChildren();
      runsEl.prepend(runPanel(f, run, reload));
    } catch (e) {
      actionStatus.replaceChildren(
        alert(e instanceof ApiError && e.status === 409 ? errorText(e) + ' (review or discard the open run first)' : `${what} failed: ${errorText(e)}`),
      );
    }
  };
  const destroyCell = h('span', {});
  const destroyButton = (): HTMLElement =>
    h(
      'button',
      {
        type: 'button',
        class: 'danger',
        'aria-label': `Plan destroying fleet ${f.name}`,
        onclick: () => {
          const yes = h('button', { type: 'button', class: 'danger', onclick: () => void act('Planning the destroy', '/destroy').then(() => destroyCell.replaceChildren(destroyButton())) }, 'Plan destroy');
          destroyCell.replaceChildren(
            h('span', { class: 'muted' }, 'Destroy stops every runner of the fleet. '),
            yes,
            ' ',
            h('button', { type: 'button', onclick: () => destroyCell.replaceChildren(destroyButton()) }, 'Cancel'),
          );
          yes.focus();
        },
      },
      'Destroy…',
    );
  destroyCell.append(destroyButton());
  const card = h(
    'section',
    { class: 'card fleet', 'data-fleet': f.name, 'aria-labelledby': `fleet-${f.id}` },
    h('h2', { id: `fleet-${f.id}` }, `${f.name} `, h('span', { class: 'muted' }, fleetSize(f.module, f.runners, f.status)), ' ', h('span', { class: 'badge ' + f.status }, f.status)),
    h('p', { class: 'muted' }, `Rollouts: ${f.rollout.strategy}, bake ${f.rollout.bake_seconds} s, at most ${(f.rollout.max_dlq_ratio * 100).toFixed(1)} % to the DLQ.`),
    h(
      'form',
      {
        class: 'row',
        onsubmit: (e: Event) => {
          e.preventDefault();
          const n = Number(size.value);
          if (!Number.isInteger(n) || n < 0 || n > 1000) {
            actionStatus.replaceChildren(alert('A fleet has 0 to 1000 runners.'));
            return;
          }
          void act(`Planning a scale to ${n}`, '/scale', { runners: n });
        },
      },
      h('label', { for: `scale-${f.id}` }, 'Runners'),
      size,
      h('button', { type: 'submit', 'aria-label': `Plan scaling fleet ${f.name}` }, 'Plan scale'),
      h('button', { type: 'button', onclick: () => void act('Planning', '/runs'), 'aria-label': `Plan fleet ${f.name} again as recorded` }, 'Plan again'),
      destroyCell,
    ),
    actionStatus,
    h('h3', {}, 'Runners'),
    runnersEl,
    h('h3', {}, 'Runs'),
    runsEl,
  );
  const drawRunners = async (): Promise<void> => {
    try {
      const runners = await api.get<List<Runner>>(projectPath(`/fleets/${f.id}/runners?limit=200`));
      runnersEl.replaceChildren(runnersTable(runners.items));
    } catch (e) {
      runnersEl.replaceChildren(alert('Cannot read the fleet’s runners: ' + errorText(e)));
    }
  };
  void drawRunners();
  void (async () => {
    try {
      const runs = await api.get<List<Run>>(projectPath(`/fleets/${f.id}/runs?limit=200`));
      const recent = runs.items.slice(-5).reverse();
      if (recent.length === 0) runsEl.replaceChildren(h('p', { class: 'muted' }, 'No Terraform run yet.'));
      else runsEl.replaceChildren(...recent.map((r) => runPanel(f, r, reload)));
    } catch (e) {
      runsEl.replaceChildren(alert('Cannot read the fleet’s runs: ' + errorText(e)));
    }
  })();
  // Runners register after an apply has started them and fall silent when
  // they stop, so their health is redrawn while the card is on the page
  // (a reload or leaving the page detaches it, which ends the refresh).
  const timer = window.setInterval(() => {
    if (!card.isConnected) window.clearInterval(timer);
    else if (!document.hidden) void drawRunners();
  }, runnersRefreshMs);
  return card;
}

/** How often a fleet card redraws its runners' health. */
const runnersRefreshMs = 5000;

function runnersTable(runners: Runner[]): HTMLElement {
  if (runners.length === 0) return h('p', { class: 'muted' }, 'No runner has registered yet.');
  const now = Date.now();
  return h(
    'table',
    { class: 'grid compact runners' },
    h('thead', {}, h('tr', {}, ...['Runner', 'Health', 'Version', 'Last seen', 'Generation'].map((c) => h('th', { scope: 'col' }, c)))),
    h(
      'tbody',
      {},
      ...runners.map((u) => {
        const health = u.revoked ? 'Revoked' : u.live ? 'Live' : 'Silent';
        return h(
          'tr',
          { 'data-runner': u.name, 'data-health': health },
          h('th', { scope: 'row' }, u.name),
          h('td', {}, h('span', { class: 'badge ' + health }, health)),
          h('td', {}, u.version),
          h('td', {}, formatAgo(u.last_seen_at, now)),
          h('td', {}, String(u.generation)),
        );
      }),
    ),
  );
}

/** runPanel shows one run: its plan for review, its log (live while it runs) and what can be done. */
function runPanel(f: Fleet, first: Run, reload: () => Promise<void>): HTMLElement {
  const el = h('article', { class: 'run', 'data-run': String(first.number) });
  const log = h('pre', { class: 'output log', tabindex: '0', 'aria-label': `Log of run ${first.number}` });
  const base = projectPath(`/fleets/${f.id}/runs/${first.number}`);
  let streaming = false;
  const draw = (run: Run) => {
    el.dataset.state = run.state;
    const head = h(
      'h4',
      {},
      `Run ${run.number}: ${run.reason}${run.destroy ? ' (destroy)' : ''}, ${run.runners} runner${run.runners === 1 ? '' : 's'} `,
      h('span', { class: 'badge run-state ' + run.state }, run.state),
      run.phase && open.has(run.state) ? ` ${run.phase}` : '',
      run.progress.total ? ` ${run.progress.done}/${run.progress.total}` : '',
    );
    const parts: (Node | string)[] = [head, h('p', { class: 'muted' }, `requested by ${run.requested_by || '–'}`, run.approved_by ? `, approved by ${run.approved_by}` : '', ', ', time(run.created_at))];
    if (run.plan) {
      parts.push(
        h(
          'div',
          { class: 'plan', 'aria-label': `Plan of run ${run.number}` },
          h('p', { class: 'plan-text' }, h('strong', {}, run.plan.text || `${run.plan.add} to add, ${run.plan.change} to change, ${run.plan.destroy} to destroy`)),
          run.plan.changes.length
            ? h('ul', { class: 'changes' }, ...run.plan.changes.map((c) => h('li', { class: c.action }, h('span', { class: 'action' }, c.action), ' ', h('code', {}, c.address))))
            : null,
        ),
      );
    }
    if (run.error) parts.push(alert(`${run.error}${run.error_kind === 'retry' ? ' (plan again to retry)' : run.error_kind === 'needs_human' ? ' (change something first)' : ''}`));
    const buttons = h('div', { class: 'row' });
    const post = (what: string) => async () => {
      for (const b of buttons.querySelectorAll('button')) (b as HTMLButtonElement).disabled = true;
      try {
        const next = await api.post<Run>(`${base}/${what}`, {});
        draw(next);
        follow();
        if (!open.has(next.state)) void reload();
      } catch (e) {
        buttons.append(alert(errorText(e)));
      }
    };
    if (run.state === 'planned') {
      buttons.append(
        h('button', { type: 'button', class: 'primary approve', onclick: post('approve'), 'aria-label': `Approve run ${run.number} of ${f.name}` }, 'Approve and apply'),
        h('button', { type: 'button', class: 'discard', onclick: post('discard'), 'aria-label': `Discard run ${run.number} of ${f.name}` }, 'Discard'),
      );
    } else if (open.has(run.state)) {
      buttons.append(h('button', { type: 'button', onclick: post('cancel'), 'aria-label': `Cancel run ${run.number} of ${f.name}` }, 'Cancel run'));
    }
    parts.push(buttons, h('details', { open: open.has(run.state) && run.state !== 'planned' }, h('summary', {}, 'Log'), log));
    el.replaceChildren(...parts);
  };
  const follow = () => {
    if (streaming) return;
    streaming = true;
    log.textContent = '';
    const es = stream(
      base + '/logs',
      {
        message: (d) => {
          log.textContent += (d as { line: string }).line + '\n';
          log.scrollTop = log.scrollHeight;
        },
        progress: () => undefined,
        end: (d) => {
          es.close();
          streaming = false;
          const run = d as Run;
          const text = log.textContent;
          draw(run);
          log.textContent = text;
          if (!open.has(run.state)) void reload();
        },
      },
      () => {
        streaming = false;
      },
    );
  };
  draw(first);
  if (open.has(first.state) && first.state !== 'planned') follow();
  else
    void api
      .get<{ items: { line: string }[] }>(base + '/logs')
      .then((r) => (log.textContent = r.items.map((l) => l.line).join('\n') || 'No log lines.'))
      .catch(() => (log.textContent = 'The log is not available.'));
  return el;
}

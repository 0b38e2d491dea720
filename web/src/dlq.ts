// The DLQ section of a pipeline's page (shared by the pipeline pages; not a page itself): counts per reason, the latest dead
// letters (payload previews only when the project enables record previews),
// row selection and replay with its progress; and the project's record
// previews setting (owners only).
import { api } from './api';
import { h, alert, errorText, projectPath, time, currentRole, onLeave } from './dom';
import { dlqKey, parseRedactPaths, replaySelection, replayText, formatCount, type ReplayItem } from './logic';

interface Preview {
  text: string;
  encoding?: string;
  bytes: number;
  truncated?: boolean;
}

interface DeadLetter {
  partition: number;
  offset: number;
  timestamp: string;
  reason: string;
  error: string;
  step?: string;
  revision?: string;
  source_topic: string;
  source_partition: number;
  source_offset: number;
  headers: { name: string; value?: string }[];
  key_hash?: string;
  key?: Preview;
  value?: Preview;
  replayed_from?: string;
}

interface DLQ {
  topic: string;
  total: number;
  reasons: { reason: string; count: number }[];
  letters: DeadLetter[];
  previews: boolean;
  runners: number;
  sampled_at?: string;
}

const canReplay = () => ['owner', 'admin', 'developer'].includes(currentRole());

/** dlqSection draws the DLQ of the pipeline at base and keeps it fresh; the selection survives refreshes. */
export function dlqSection(base: string): HTMLElement {
  const selected = new Set<string>();
  const status = h('p', { role: 'status', 'aria-live': 'polite', id: 'replay-status', class: 'muted' });
  const content = h('div', { id: 'dlq-content' }, h('p', { class: 'muted' }, 'Loading the dead letters…'));
  const section = h('section', { 'aria-labelledby': 'dlq-title', id: 'dlq' }, h('h2', { id: 'dlq-title' }, 'Dead letters'), content, status);
  let stopped = false;

  const follow = async (r: ReplayItem) => {
    status.textContent = replayText(r);
    for (let i = 0; i < 600 && !stopped && !['done', 'failed'].includes(r.state); i++) {
      await new Promise((res) => setTimeout(res, 1000));
      try {
        const list = await api.get<{ items: ReplayItem[] }>(base + '/dlq/replays');
        const cur = list.items.find((x) => x.id === r.id);
        if (cur) r = { ...cur, duplicate: r.duplicate };
      } catch (e) {
        status.textContent = 'Cannot read the replay’s progress: ' + errorText(e);
      }
      status.textContent = replayText(r);
    }
    void draw();
  };

  const draw = async () => {
    let dlq: DLQ;
    try {
      dlq = await api.get<DLQ>(base + '/dlq');
    } catch (e) {
      content.replaceChildren(alert('Cannot read the dead letters: ' + errorText(e)));
      return;
    }
    content.replaceChildren(...dlqView(dlq, selected, async () => {
      if (selected.size === 0) return;
      status.textContent = 'Requesting the replay…';
      try {
        const r = await api.post<ReplayItem>(base + '/dlq/replay', replaySelection(selected));
        selected.clear();
        void follow(r);
      } catch (e) {
        status.textContent = '';
        status.append(alert('The replay was not requested: ' + errorText(e)));
      }
    }));
  };
  void draw();
  const timer = window.setInterval(() => void draw(), 10_000);
  onLeave(() => {
    stopped = true;
    window.clearInterval(timer);
  });
  return section;
}

function previewCell(p: Preview | undefined, label: string): Node | string {
  if (!p) return '–';
  return h('code', { class: 'preview', title: `${label}: ${p.bytes} bytes${p.truncated ? ', cut' : ''}${p.encoding ? ', ' + p.encoding : ''}` }, p.text + (p.truncated ? '…' : ''));
}

function dlqView(dlq: DLQ, selected: Set<string>, replay: () => void): Node[] {
  if (!dlq.topic || dlq.total === 0) {
    return [
      h(
        'p',
        { class: 'empty', id: 'dlq-empty' },
        'No dead letters. A record goes to the pipeline’s DLQ topic',
        dlq.topic ? ` (${dlq.topic})` : '',
        ' when a step fails on it (an expression error, a parse error, a script error) instead of stopping the pipeline; its reason, error, step and source offset show here, and it can be replayed once the pipeline is fixed.',
      ),
    ];
  }
  const out: Node[] = [];
  out.push(
    h(
      'p',
      {},
      `${formatCount(dlq.total)} dead letter${dlq.total === 1 ? '' : 's'} in ${dlq.topic}`,
      dlq.sampled_at ? h('span', { class: 'muted' }, ' (read ', time(dlq.sampled_at), ')') : '',
    ),
    h(
      'ul',
      { class: 'dlq-reasons', 'aria-label': 'Dead letters per reason' },
      ...dlq.reasons.map((r) => h('li', {}, h('span', { class: 'badge' }, r.reason || 'unknown'), ` ${formatCount(r.count)}`)),
    ),
  );
  if (!dlq.previews) {
    out.push(h('p', { class: 'muted' }, 'Payloads are not shown: record previews are off for this project, so no key or value leaves the runners.'));
  }
  const replayBtn = h('button', { type: 'button', id: 'dlq-replay', disabled: selected.size === 0 || !canReplay(), onclick: replay }, `Replay selected (${selected.size})`);
  const update = () => {
    replayBtn.textContent = `Replay selected (${selected.size})`;
    replayBtn.disabled = selected.size === 0 || !canReplay();
  };
  const all = h('input', {
    type: 'checkbox',
    id: 'dlq-all',
    'aria-label': 'Select every dead letter shown',
    onchange: (e: Event) => {
      const on = (e.target as HTMLInputElement).checked;
      for (const dl of dlq.letters) {
        if (on) selected.add(dlqKey(dl));
        else selected.delete(dlqKey(dl));
      }
      for (const cb of table.querySelectorAll<HTMLInputElement>('tbody input[type=checkbox]')) cb.checked = on;
      update();
    },
  });
  const cols = ['Time', 'Reason', 'Error', 'Step', 'Source', 'Headers', ...(dlq.previews ? ['Key', 'Value'] : [])];
  const table = h(
    'table',
    { class: 'grid compact', id: 'dlq-letters' },
    h('caption', { class: 'sr-only' }, 'The latest dead letters, newest first'),
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, all), ...cols.map((c) => h('th', { scope: 'col' }, c)))),
    h(
      'tbody',
      {},
      ...dlq.letters.map((dl) => {
        const key = dlqKey(dl);
        const cb = h('input', {
          type: 'checkbox',
          'aria-label': `Select the dead letter at DLQ partition ${dl.partition} offset ${dl.offset}`,
          onchange: (e: Event) => {
            if ((e.target as HTMLInputElement).checked) selected.add(key);
            else selected.delete(key);
            update();
          },
        });
        cb.checked = selected.has(key);
        return h(
          'tr',
          { 'data-offset': key },
          h('td', {}, cb),
          h('td', {}, time(dl.timestamp)),
          h('td', {}, h('span', { class: 'badge' }, dl.reason || 'unknown')),
          h('td', { class: 'error-text' }, dl.error),
          h('td', {}, dl.step || '–'),
          h('td', {}, `${dl.source_topic} ${dl.source_partition}/${dl.source_offset}`, dl.replayed_from ? h('div', { class: 'muted' }, 'replayed from ' + dl.replayed_from) : ''),
          h('td', {}, dl.headers.filter((x) => !x.name.startsWith('sluice.')).map((x) => (x.value != null ? `${x.name}=${x.value}` : x.name)).join(', ') || '–'),
          ...(dlq.previews ? [h('td', {}, previewCell(dl.key, 'key')), h('td', {}, previewCell(dl.value, 'value'))] : []),
        );
      }),
    ),
  );
  out.push(
    h(
      'div',
      { class: 'toolbar' },
      replayBtn,
      h('span', { class: 'muted' }, canReplay() ? ' Sends the selected records back to the stage they failed in, once, with a sluice.replayed-from header.' : ' Developers and owners can replay.'),
    ),
    table,
  );
  return out;
}

interface ProjectBody {
  id: string;
  role?: string;
  record_previews: { enabled: boolean; redact: string[]; max_bytes: number };
}

/** previewSettings is the project's record previews control; owners change it, others see it. */
export async function previewSettings(): Promise<HTMLElement> {
  const section = h('section', { 'aria-labelledby': 'previews-title', id: 'previews-settings' }, h('h2', { id: 'previews-title' }, 'Record previews'));
  let p: ProjectBody;
  try {
    p = await api.get<ProjectBody>(projectPath(''));
  } catch (e) {
    section.append(alert('Cannot read the project: ' + errorText(e)));
    return section;
  }
  const rp = p.record_previews;
  const owner = currentRole() === 'owner' || currentRole() === 'admin';
  const enabled = h('input', { type: 'checkbox', id: 'previews-enabled', disabled: !owner });
  enabled.checked = rp.enabled;
  const redact = h('textarea', { id: 'previews-redact', rows: '3', disabled: !owner, placeholder: 'card.number\nemail' });
  redact.value = rp.redact.join('\n');
  const max = h('input', { type: 'number', id: 'previews-max', min: '16', max: '4096', step: '1', disabled: !owner });
  max.value = String(rp.max_bytes || 1024);
  const msg = h('p', { role: 'status', 'aria-live': 'polite', class: 'muted' });
  const save = h('button', {
    type: 'submit',
    disabled: !owner,
  }, 'Save record previews');
  const form = h(
    'form',
    {
      onsubmit: async (e: Event) => {
        e.preventDefault();
        const { paths, error } = parseRedactPaths(redact.value);
        if (error) {
          msg.replaceChildren(alert(error));
          return;
        }
        try {
          const out = await api.patch<ProjectBody>(projectPath(''), { record_previews: { enabled: enabled.checked, redact: paths, max_bytes: Number(max.value) || 1024 } });
          Object.assign(rp, out.record_previews);
          msg.textContent = out.record_previews.enabled ? 'Saved: runners show previews within their next report.' : 'Saved: previews are off; no key or value leaves the runners.';
        } catch (err) {
          msg.replaceChildren(alert('Not saved: ' + errorText(err)));
        }
      },
    },
    h(
      'p',
      { class: 'warning', id: 'previews-warning' },
      'Warning: with previews on, record payloads and keys leave your runners. Dead letters and hot keys then carry previews of their keys and values (the fields listed below replaced by "[redacted]", each cut to the size below) that the control plane stores and shows to every member of the project. Off, only offsets, counts, error messages and key hashes cross the boundary.',
    ),
    h('div', {}, enabled, h('label', { for: 'previews-enabled' }, ' Show record previews')),
    h('div', {}, h('label', { for: 'previews-redact' }, 'Fields to redact (one path per line, e.g. card.number)'), redact),
    h('div', {}, h('label', { for: 'previews-max' }, 'Largest preview, bytes (16 to 4096) '), max),
    owner ? save : h('p', { class: 'muted' }, 'Only the project’s owners can change this.'),
    msg,
  );
  section.append(form);
  return section;
}

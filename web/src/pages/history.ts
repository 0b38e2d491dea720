// History: the commits that made revisions, newest first, with author,
// message, the pipelines they changed and their rollouts; a rollout can be
// rolled back (the API restores the previous revisions and writes a revert
// commit).
import { api, type List } from '../api';
import { h, alert, errorText, projectPath, time } from '../dom';
import { historyRows, rollbackable, type HistoryRow, type PipelineItem, type RevisionItem, type RolloutItem } from '../logic';

async function all<T>(path: string): Promise<T[]> {
  const out: T[] = [];
  let cursor = '';
  for (let i = 0; i < 20; i++) {
    const page = await api.get<List<T>>(path + (path.includes('?') ? '&' : '?') + 'limit=200' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : ''));
    out.push(...page.items);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return out;
}

export async function renderHistory(main: HTMLElement): Promise<void> {
  main.className = 'page history-page';
  const list = h('div', { id: 'history' }, h('p', { class: 'muted' }, 'Loading…'));
  const status = h('div', { id: 'history-status', role: 'status' });
  main.append(h('h1', {}, 'History'), h('p', { class: 'muted' }, 'Every commit that changed a pipeline, and where it rolled out.'), status, list);

  const load = async () => {
    let rows: HistoryRow[];
    let canRollBack: Set<string>;
    try {
      const pipelines = await all<PipelineItem>(projectPath('/pipelines'));
      const [revisions, rollouts] = await Promise.all([
        Promise.all(pipelines.map(async (p) => ({ pipeline: p.name, revisions: await all<RevisionItem>(projectPath(`/pipelines/${p.id}/revisions`)) }))),
        all<RolloutItem>(projectPath('/rollouts')),
      ]);
      rows = historyRows(revisions, rollouts);
      canRollBack = rollbackable(rollouts);
    } catch (e) {
      list.replaceChildren(alert('Cannot read the history: ' + errorText(e)));
      return;
    }
    if (rows.length === 0) {
      list.replaceChildren(h('p', { class: 'empty' }, 'No revision yet: commit a pipeline in the editor or push one with git.'));
      return;
    }
    list.replaceChildren(
      h(
        'ol',
        { class: 'history' },
        ...rows.map((r) =>
          h(
            'li',
            { class: 'card', 'data-commit': r.commit },
            h(
              'div',
              { class: 'row' },
              h('code', { class: 'sha', title: r.commit }, r.commit ? r.commit.slice(0, 7) : 'API'),
              h('strong', { class: 'msg' }, r.message.split('\n')[0] || '(no message)'),
            ),
            h('p', { class: 'muted' }, r.author ? `${r.author}, ` : '', time(r.at)),
            r.pipelines.length ? h('p', {}, 'Pipelines: ', r.pipelines.join(', ')) : h('p', { class: 'muted' }, 'Changed no pipeline revision.'),
            r.rollouts.length ? h('ul', { class: 'rollouts' }, ...r.rollouts.map((ro) => rolloutItem(ro, canRollBack.has(ro.id)))) : null,
          ),
        ),
      ),
    );
  };

  function rolloutItem(ro: RolloutItem, latest: boolean): HTMLElement {
    const li = h(
      'li',
      {},
      `Fleet ${ro.fleet}: `,
      h('span', { class: 'badge ' + ro.status }, ro.status),
      ` ${ro.phase}`,
      ro.reason ? ` (${ro.reason})` : '',
      ro.revert_commit ? h('span', { class: 'muted' }, ` rolled back by ${ro.revert_commit.slice(0, 7)}`) : '',
    );
    if (latest) {
      li.append(' ', rollbackButton(ro, li));
    }
    return li;
  }

  function rollbackButton(ro: RolloutItem, li: HTMLElement): HTMLElement {
    const btn = h(
      'button',
      {
        type: 'button',
        class: 'rollback',
        'aria-label': `Roll back ${ro.commit?.slice(0, 7) ?? ''} on ${ro.fleet}`,
        onclick: () => {
          const reason = h('input', { id: 'rollback-reason-' + ro.id, placeholder: 'why, e.g. errors in the DLQ', size: '30' });
          const form = h(
            'form',
            {
              class: 'inline',
              onsubmit: async (e: Event) => {
                e.preventDefault();
                go.disabled = true;
                status.replaceChildren(h('p', { class: 'muted' }, `Rolling back on ${ro.fleet}…`));
                try {
                  const res = await api.post<RolloutItem>(projectPath(`/rollouts/${ro.id}/rollback`), { reason: reason.value.trim() });
                  status.replaceChildren(
                    h('p', { id: 'rollback-done' }, `Rolled back on ${res.fleet}: ${res.phase} (${res.status})${res.revert_commit ? ', revert commit ' + res.revert_commit.slice(0, 7) : ''}.`),
                  );
                  await load();
                } catch (e) {
                  status.replaceChildren(alert('The rollback failed: ' + errorText(e)));
                  go.disabled = false;
                }
              },
            },
            h('label', { for: 'rollback-reason-' + ro.id }, 'Reason '),
            reason,
            ' ',
          );
          const go = h('button', { type: 'submit', class: 'danger' }, 'Roll back now');
          form.append(go, ' ', h('button', { type: 'button', onclick: () => form.replaceWith(rollbackButton(ro, li)) }, 'Cancel'));
          btn.replaceWith(form);
          reason.focus();
        },
      },
      'Roll back',
    );
    return btn;
  }

  await load();
}

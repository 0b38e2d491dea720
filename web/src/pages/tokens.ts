// API tokens of the project: create one with a role and an expiry (its
// secret is shown once, with a copy button), list them, revoke one.
import { api, ApiError, type List } from '../api';
import { h, alert, errorText, projectPath, copyText, time, currentRole } from '../dom';
import { expiryFrom, formatAgo } from '../logic';

interface Token {
  id: string;
  name: string;
  role: string;
  prefix: string;
  created_at: string;
  expires_at?: string;
  revoked_at?: string;
  last_used_at?: string;
}

const roles = ['viewer', 'developer', 'owner'];

export async function renderTokens(main: HTMLElement): Promise<void> {
  main.className = 'page tokens-page';
  const listEl = h('div', { id: 'token-list' }, h('p', { class: 'muted' }, 'Loading…'));
  const name = h('input', { id: 'token-name', name: 'name', required: true, maxlength: '100', placeholder: 'ci-deploy' });
  const role = h('select', { id: 'token-role', name: 'role' }, ...roles.map((r) => h('option', { value: r }, r)));
  const mine = roles.indexOf(currentRole());
  // A token cannot be stronger than its creator: offer what the API allows.
  for (const o of Array.from(role.options)) o.disabled = mine >= 0 && roles.indexOf(o.value) > mine;
  role.value = 'developer';
  if (role.selectedOptions[0]?.disabled) role.value = 'viewer';
  const expiry = h(
    'select',
    { id: 'token-expiry', name: 'expiry' },
    h('option', { value: '7' }, '7 days'),
    h('option', { value: '30' }, '30 days'),
    h('option', { value: '90' }, '90 days'),
    h('option', { value: '365' }, '1 year'),
    h('option', { value: '' }, 'Never (until revoked)'),
  );
  expiry.value = '30';
  const create = h('button', { type: 'submit', class: 'primary' }, 'Create token');
  const result = h('div', { id: 'token-result', 'aria-live': 'polite' });
  const form = h(
    'form',
    {
      class: 'card form-grid',
      'aria-labelledby': 'token-create-title',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        result.replaceChildren();
        if (!name.value.trim()) {
          result.append(alert('Name the token after what will use it, e.g. ci-deploy.'));
          name.focus();
          return;
        }
        create.disabled = true;
        try {
          const body: Record<string, string> = { name: name.value.trim(), role: role.value };
          const exp = expiryFrom(expiry.value, new Date());
          if (exp) body.expires_at = exp;
          const res = await api.post<{ token: Token; secret?: string; note: string }>(projectPath('/tokens'), body);
          showSecret(result, res.token, res.secret ?? '', res.note);
          name.value = '';
          await load();
        } catch (e) {
          result.append(alert('The token was not created: ' + errorText(e)));
        } finally {
          create.disabled = false;
        }
      },
    },
    h('h2', { id: 'token-create-title' }, 'New token'),
    h('label', { for: 'token-name' }, 'Name'),
    name,
    h('label', { for: 'token-role' }, 'Role'),
    role,
    h('label', { for: 'token-expiry' }, 'Expires in'),
    expiry,
    h('span'),
    create,
  );
  main.append(
    h('h1', {}, 'API tokens'),
    h('p', { class: 'muted' }, 'Tokens authenticate scripts, CI and git (as the password of git push). Each has a role in this project; a token can never be stronger than you.'),
    form,
    result,
    h('section', { 'aria-labelledby': 'tokens-title' }, h('h2', { id: 'tokens-title' }, 'Tokens'), listEl),
  );

  async function load(): Promise<void> {
    let tokens: Token[];
    try {
      tokens = (await api.get<List<Token>>(projectPath('/tokens?limit=200'))).items;
    } catch (e) {
      listEl.replaceChildren(
        alert(e instanceof ApiError && e.status === 403 ? 'Listing tokens needs the developer role in this project.' : 'Cannot list the tokens: ' + errorText(e)),
      );
      return;
    }
    if (tokens.length === 0) {
      listEl.replaceChildren(h('p', { class: 'empty' }, 'No tokens yet: create one above.'));
      return;
    }
    const now = Date.now();
    tokens.sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    listEl.replaceChildren(
      h(
        'table',
        { class: 'grid', id: 'tokens' },
        h('caption', { class: 'sr-only' }, 'API tokens of the project'),
        h(
          'thead',
          {},
          h('tr', {}, ...['Name', 'Role', 'Prefix', 'Created', 'Expires', 'Last used', 'State', ''].map((c) => h('th', { scope: 'col' }, c))),
        ),
        h(
          'tbody',
          {},
          ...tokens.map((t) => {
            const expired = t.expires_at && Date.parse(t.expires_at) < now;
            const st = t.revoked_at ? 'Revoked' : expired ? 'Expired' : 'Active';
            const actions = h('td', {});
            if (st === 'Active') actions.append(revokeButton(t, actions));
            return h(
              'tr',
              { 'data-token': t.name },
              h('th', { scope: 'row' }, t.name),
              h('td', {}, t.role),
              h('td', {}, h('code', {}, t.prefix + '…')),
              h('td', {}, time(t.created_at)),
              h('td', {}, t.expires_at ? time(t.expires_at) : 'never'),
              h('td', {}, t.last_used_at ? formatAgo(t.last_used_at, now) : 'never'),
              h('td', {}, h('span', { class: 'badge ' + st }, st)),
              actions,
            );
          }),
        ),
      ),
    );
  }

  // Revoking asks once more in place: a second, explicit button.
  function revokeButton(t: Token, cell: HTMLElement): HTMLElement {
    return h(
      'button',
      {
        type: 'button',
        'aria-label': `Revoke ${t.name}`,
        onclick: () => {
          const yes = h(
            'button',
            {
              type: 'button',
              class: 'danger',
              'aria-label': `Confirm revoking ${t.name}`,
              onclick: async () => {
                yes.disabled = true;
                try {
                  await api.del(projectPath('/tokens/' + t.id));
                  await load();
                } catch (e) {
                  cell.replaceChildren(alert(errorText(e)));
                }
              },
            },
            'Revoke now',
          );
          const no = h('button', { type: 'button', onclick: () => cell.replaceChildren(revokeButton(t, cell)) }, 'Keep');
          cell.replaceChildren(h('span', { class: 'muted' }, 'Scripts using it stop working. '), yes, ' ', no);
          yes.focus();
        },
      },
      'Revoke',
    );
  }

  await load();
}

function showSecret(el: HTMLElement, t: Token, secret: string, note: string): void {
  if (!secret) {
    el.replaceChildren(h('p', { class: 'card' }, note || 'The secret is not shown again.'));
    return;
  }
  const field = h('input', { id: 'token-secret', readonly: true, value: secret, 'aria-describedby': 'token-secret-note', spellcheck: 'false' });
  const status = h('span', { role: 'status', class: 'muted' });
  const copy = h(
    'button',
    {
      type: 'button',
      id: 'copy-secret',
      onclick: async () => {
        status.textContent = (await copyText(secret, field)) ? 'Copied.' : 'Select the text and copy it.';
      },
    },
    'Copy',
  );
  el.replaceChildren(
    h(
      'div',
      { class: 'card secret' },
      h('h2', {}, `Token ${t.name} (${t.role})`),
      h('label', { for: 'token-secret' }, 'Secret'),
      h('div', { class: 'row' }, field, copy, status),
      h('p', { id: 'token-secret-note', class: 'warn' }, note || 'Copy it now: it is shown only this once.'),
      h('button', { type: 'button', onclick: () => el.replaceChildren() }, 'Done, hide it'),
    ),
  );
  field.focus();
  field.select();
}

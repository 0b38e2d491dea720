// The sign-in form.
import { api, ApiError } from '../api';
import { h, state, errorText } from '../dom';

export function renderLogin(app: HTMLElement, signedIn: () => Promise<void>): void {
  const err = h('p', { role: 'alert', class: 'error', id: 'login-error' });
  const email = h('input', { id: 'email', name: 'email', type: 'email', autocomplete: 'username', required: true, value: 'admin@localhost' });
  const password = h('input', { id: 'password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit' }, 'Sign in');
  const form = h(
    'form',
    {
      class: 'login',
      'aria-labelledby': 'login-title',
      onsubmit: async (e: Event) => {
        e.preventDefault();
        err.textContent = '';
        submit.disabled = true;
        try {
          state.me = await api.login(email.value, password.value);
          await signedIn();
        } catch (e) {
          err.textContent = e instanceof ApiError && e.status === 401 ? 'Wrong email or password.' : errorText(e);
          password.focus();
        } finally {
          submit.disabled = false;
        }
      },
    },
    h('h1', { id: 'login-title' }, 'Sign in to Sluice'),
    h('label', { for: 'email' }, 'Email'),
    email,
    h('label', { for: 'password' }, 'Password'),
    password,
    submit,
    err,
  );
  app.replaceChildren(h('main', { class: 'center' }, form));
  password.focus();
}

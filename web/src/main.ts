// Sluice's web IDE: the shell (sign-in, project switcher, navigation) and
// the router. Pages are routed by the URL hash (#/editor, #/pipelines,
// #/pipelines/<id>, #/history, #/fleets, #/tokens) so the control plane
// serves one index.html; each page is a module under pages/.
import './style.css';
import { api, type List } from './api';
import { h, state, errorText, leave, type Project } from './dom';
import { renderLogin } from './pages/login';
import { renderEditor } from './pages/editor';
import { renderPipelines, renderPipeline } from './pages/pipelines';
import { renderHistory } from './pages/history';
import { renderFleets } from './pages/fleets';
import { renderTokens } from './pages/tokens';

const app = document.getElementById('app')!;

async function start(): Promise<void> {
  try {
    state.me = await api.me();
  } catch (e) {
    app.replaceChildren(h('main', { class: 'center' }, h('p', { role: 'alert' }, 'The control plane is not answering: ' + errorText(e))));
    return;
  }
  if (!state.me) {
    login();
    return;
  }
  await loadProjects();
  route();
}

function login(): void {
  leave();
  renderLogin(app, async () => {
    await loadProjects();
    if (!location.hash) {
      location.hash = '#/editor'; // hashchange routes
      return;
    }
    route();
  });
}

async function loadProjects(): Promise<void> {
  const list = await api.get<List<Project>>('/projects?limit=200');
  state.projects = list.items;
  const saved = localStorage.getItem('sluice.project');
  state.project = state.projects.find((p) => p.id === saved)?.id ?? state.projects[0]?.id ?? '';
}

window.addEventListener('hashchange', () => {
  if (state.me) route();
});

const pages: { name: string; label: string }[] = [
  { name: 'editor', label: 'Editor' },
  { name: 'pipelines', label: 'Pipelines' },
  { name: 'history', label: 'History' },
  { name: 'fleets', label: 'Fleets' },
  { name: 'tokens', label: 'Tokens' },
];

function route(): void {
  leave();
  const [page, ...rest] = (location.hash.replace(/^#\/?/, '') || 'editor').split('/');
  const main = h('main', { id: 'main', tabindex: '-1' });
  app.replaceChildren(header(page), main);
  if (!state.project) {
    main.append(
      h('section', { class: 'empty' }, h('h1', {}, 'No project yet'), h('p', {}, 'Ask an owner to add you to a project, or create one with POST /api/v1/orgs/{org}/projects.')),
    );
    return;
  }
  const arg = rest.map(decodeURIComponent).join('/');
  switch (page) {
    case 'pipelines':
      void (arg ? renderPipeline(main, arg) : renderPipelines(main));
      break;
    case 'history':
      void renderHistory(main);
      break;
    case 'fleets':
      void renderFleets(main);
      break;
    case 'tokens':
      void renderTokens(main);
      break;
    default:
      void renderEditor(main);
  }
}

function header(page: string): HTMLElement {
  const select = h(
    'select',
    {
      id: 'project',
      onchange: (e: Event) => {
        state.project = (e.target as HTMLSelectElement).value;
        localStorage.setItem('sluice.project', state.project);
        route();
      },
    },
    ...state.projects.map((p) => {
      const o = h('option', { value: p.id }, p.name);
      o.selected = p.id === state.project;
      return o;
    }),
  );
  const link = (name: string, label: string) => h('a', { href: '#/' + name, 'aria-current': page === name ? 'page' : false }, label);
  return h(
    'header',
    { class: 'top' },
    h('span', { class: 'brand' }, 'Sluice'),
    h('label', { for: 'project', class: 'project' }, 'Project ', select),
    h('nav', { 'aria-label': 'Pages' }, ...pages.map((p) => link(p.name, p.label))),
    h('span', { class: 'spacer' }),
    h('span', { class: 'who' }, state.me?.user?.email ?? ''),
    h(
      'button',
      {
        type: 'button',
        onclick: async () => {
          await api.logout().catch(() => undefined);
          state.me = null;
          location.hash = '';
          login();
        },
      },
      'Sign out',
    ),
  );
}

void start();

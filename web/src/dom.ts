// What every page shares: the signed-in state, an element builder and
// error texts. No page imports another page.
import { ApiError, type Me } from './api';

export interface Project {
  id: string;
  name: string;
  role?: string;
}

export const state = {
  me: null as Me | null,
  projects: [] as Project[],
  project: '' as string,
};

type Attr = string | boolean | ((e: Event) => void);

/** h builds an element: h('button', {type: 'button'}, 'Run tests'). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, Attr> = {},
  ...children: (Node | string | null | undefined | false)[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (v === true) el.setAttribute(k, '');
    else if (v !== false) el.setAttribute(k, v);
  }
  for (const c of children) if (c != null && c !== false) el.append(c);
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';

/** s builds an SVG element. */
export function s(tag: string, attrs: Record<string, string | number> = {}, ...children: (Node | string)[]): SVGElement {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  for (const c of children) el.append(c);
  return el;
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** alert is an error paragraph screen readers announce. */
export function alert(text: string): HTMLElement {
  return h('p', { role: 'alert', class: 'error' }, text);
}

export function projectPath(rest: string): string {
  return `/projects/${state.project}${rest}`;
}

export function currentRole(): string {
  return state.projects.find((p) => p.id === state.project)?.role ?? '';
}

// Cleanups of the page on screen (event streams, timers), run when the
// next page is routed.
const leaving: (() => void)[] = [];

export function onLeave(fn: () => void): void {
  leaving.push(fn);
}

export function leave(): void {
  for (const fn of leaving.splice(0)) {
    try {
      fn();
    } catch {
      // A cleanup that fails must not keep the next page from drawing.
    }
  }
}

/**
 * stream follows a server-sent event stream of the API until the page is
 * left or it ends; handlers get parsed JSON.
 */
export function stream(path: string, on: Record<string, (data: unknown) => void>, onError?: () => void): EventSource {
  const es = new EventSource('/api/v1' + path);
  for (const [name, fn] of Object.entries(on)) {
    es.addEventListener(name, (ev) => fn(JSON.parse((ev as MessageEvent).data)));
  }
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED) onError?.();
  };
  onLeave(() => es.close());
  return es;
}

/** copyText puts text on the clipboard, with a fallback for plain http. */
export async function copyText(text: string, from?: HTMLInputElement): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (!from) return false;
    from.select();
    return document.execCommand('copy');
  }
}

export function time(iso: string | undefined): HTMLElement | string {
  if (!iso) return '–';
  const d = new Date(iso);
  return h('time', { datetime: iso, title: d.toISOString() }, d.toLocaleString());
}

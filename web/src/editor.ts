// Monaco, loaded lazily by the editor page (its own chunk, so the first
// page stays small), with the YAML language service of monaco-yaml fed the
// pipeline JSON Schema that `make docs` generates from the operator
// catalog. Every worker is a file of the bundle: nothing comes from a CDN.
import * as monaco from 'monaco-editor';
import { configureMonacoYaml } from 'monaco-yaml';
import EditorWorker from 'monaco-editor/esm/vs/editor/editor.worker?worker';
import YamlWorker from './yaml.worker?worker';
import pipelineSchema from '../../docs/schema/pipeline.schema.json';
import { forYamlService, type MarkerRange } from './logic';

(self as unknown as { MonacoEnvironment: monaco.Environment }).MonacoEnvironment = {
  getWorker(_id: string, label: string) {
    return label === 'yaml' ? new YamlWorker() : new EditorWorker();
  },
};

const yaml = configureMonacoYaml(monaco, {
  enableSchemaRequest: false,
  validate: true,
  hover: true,
  completion: true,
  schemas: [],
});

const schema = forYamlService(pipelineSchema) as object;

/**
 * setPipelineFiles gives the pipeline schema to exactly these files: a
 * glob cannot tell clicks.yaml from clicks_test.yaml, whose shape differs.
 */
export function setPipelineFiles(paths: string[]): void {
  void yaml.update({
    enableSchemaRequest: false,
    validate: true,
    hover: true,
    completion: true,
    schemas: [{ uri: 'sluice://schema/pipeline.schema.json', fileMatch: paths.map((p) => 'file:///' + p), schema }],
  });
}

export type Editor = monaco.editor.IStandaloneCodeEditor;

const models = new Map<string, monaco.editor.ITextModel>();

function language(path: string): string {
  if (/\.ya?ml$/.test(path)) return 'yaml';
  if (/\.js$/.test(path)) return 'javascript';
  if (/\.json$|\.geojson$/.test(path)) return 'json';
  if (/\.md$/.test(path)) return 'markdown';
  return 'plaintext';
}

export function createEditor(el: HTMLElement, onChange: (path: string, text: string) => void): Editor {
  const ed = monaco.editor.create(el, {
    automaticLayout: true,
    minimap: { enabled: false },
    fontSize: 14,
    tabSize: 2,
    ariaLabel: 'Pipeline editor',
    scrollBeyondLastLine: false,
    renderValidationDecorations: 'on',
  });
  ed.onDidChangeModelContent(() => {
    const m = ed.getModel();
    if (m) onChange(modelPath(m), m.getValue());
  });
  return ed;
}

function modelPath(m: monaco.editor.ITextModel): string {
  return m.uri.path.replace(/^\//, '');
}

/** open shows path in the editor, creating its model the first time. */
export function open(ed: Editor, path: string, text: string): void {
  let m = models.get(path);
  if (!m) {
    m = monaco.editor.createModel(text, language(path), monaco.Uri.parse('file:///' + path));
    models.set(path, m);
  }
  ed.setModel(m);
}

/** text is the current text of path's model, if it was opened. */
export function text(path: string): string | undefined {
  return models.get(path)?.getValue();
}

/** setServerMarkers puts the server's diagnostics of one file on its model. */
export function setServerMarkers(path: string, ranges: MarkerRange[]): void {
  const m = models.get(path);
  if (!m) return;
  monaco.editor.setModelMarkers(
    m,
    'sluice',
    ranges.map((r) => ({ ...r, severity: monaco.MarkerSeverity.Error, source: 'sluice compiler' })),
  );
}

export function openPaths(): string[] {
  return [...models.keys()];
}

export function reveal(ed: Editor, line: number, column: number): void {
  ed.revealLineInCenter(line);
  ed.setPosition({ lineNumber: line, column });
  ed.focus();
}

/** reset drops every model: after a commit the branch's files are new. */
export function reset(): void {
  for (const m of models.values()) m.dispose();
  models.clear();
}

/** close drops path's model (a deleted or renamed file). */
export function close(path: string): void {
  models.get(path)?.dispose();
  models.delete(path);
}

/**
 * insertAtCursor inserts the text `make` returns for the cursor's column,
 * as one undoable edit, and focuses the editor.
 */
export function insertAtCursor(ed: Editor, make: (column: number) => string): boolean {
  const pos = ed.getPosition();
  if (!pos || !ed.getModel()) return false;
  const text = make(pos.column);
  ed.executeEdits('sluice-catalog', [{ range: new monaco.Range(pos.lineNumber, pos.column, pos.lineNumber, pos.column), text, forceMoveMarkers: true }]);
  ed.pushUndoStop();
  ed.focus();
  return true;
}

let diffSeq = 0;

/**
 * showDiff draws a side-by-side diff of one file in el (the branch's text
 * on the left, the edited one on the right) and returns its disposer.
 */
export function showDiff(el: HTMLElement, path: string, before: string, after: string): () => void {
  const n = ++diffSeq;
  const lang = language(path);
  const a = monaco.editor.createModel(before, lang, monaco.Uri.parse(`sluice-base:///${n}/${path}`));
  const b = monaco.editor.createModel(after, lang, monaco.Uri.parse(`sluice-staged:///${n}/${path}`));
  const d = monaco.editor.createDiffEditor(el, {
    automaticLayout: true,
    readOnly: true,
    originalEditable: false,
    renderSideBySide: true,
    minimap: { enabled: false },
    scrollBeyondLastLine: false,
    ariaLabel: `Changes to ${path}`,
  });
  d.setModel({ original: a, modified: b });
  return () => {
    d.dispose();
    a.dispose();
    b.dispose();
  };
}

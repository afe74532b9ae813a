// Loading what validate.mjs checks: npm modules, YAML, a kustomization built by the real
// kustomize (`kubectl kustomize`, with extra components and stand-ins for missing secret files),
// and the server's flags as the Deployment passes them.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const deployDir = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
// deploy/check.sh installs deploy/package-lock.json in $GRADSERVE_NODE_MODULES.
export const modules = process.env.GRADSERVE_NODE_MODULES || path.join(deployDir, 'node_modules');
export const require = createRequire(path.join(modules, 'noop.js'));
const yaml = require('js-yaml');

export function loadYamlFile(file) {
  return yaml.loadAll(fs.readFileSync(file, 'utf8'), null, { filename: file }).filter((d) => d != null);
}

// The kustomization.yaml files under dir, parsed: [{dir, k}].
function kustomizations(dir) {
  const out = [];
  const walk = (d) => {
    const file = path.join(d, 'kustomization.yaml');
    if (fs.existsSync(file)) out.push({ dir: d, k: loadYamlFile(file)[0] ?? {} });
    for (const e of fs.readdirSync(d, { withFileTypes: true }))
      if (e.isDirectory()) walk(path.join(d, e.name));
  };
  walk(dir);
  return out;
}

// Builds DIR's kustomization with `components` added, as `kubectl apply -k` would: a copy of DIR
// (secret files that are not written yet, such as the gitignored token, get a stand-in) under an
// overlay that adds the components. Returns the objects.
export function build(dir, components = []) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gradserve-kustomize-'));
  try {
    const base = path.join(tmp, 'base');
    fs.cpSync(dir, base, { recursive: true });
    for (const { dir: d, k } of kustomizations(base)) {
      for (const g of k.secretGenerator ?? []) {
        for (const f of g.files ?? []) {
          const file = path.join(d, f.includes('=') ? f.split('=', 2)[1] : f);
          if (!fs.existsSync(file)) fs.writeFileSync(file, 'stand-in\n');
        }
      }
    }
    fs.writeFileSync(
      path.join(tmp, 'kustomization.yaml'),
      yaml.dump({
        apiVersion: 'kustomize.config.k8s.io/v1beta1',
        kind: 'Kustomization',
        resources: ['base'],
        components: components.map((c) => `base/${c}`),
      }),
    );
    const kubectl = process.env.KUBECTL || 'kubectl';
    let out;
    try {
      out = execFileSync(kubectl, ['kustomize', tmp], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (e) {
      throw new Error(`${kubectl} kustomize ${dir}: ${e.stderr || e.message}`);
    }
    return yaml.loadAll(out).filter((d) => d != null);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// YAML files under dir that no kustomization refers to (as a resource, patch, component file or
// generator input): a manifest nobody applies is a mistake.
export function orphans(dir) {
  const used = new Set();
  for (const { dir: d, k } of kustomizations(dir)) {
    used.add(path.resolve(d, 'kustomization.yaml'));
    const refs = [
      ...(k.resources ?? []),
      ...(k.patches ?? []).map((p) => p.path).filter(Boolean),
      ...(k.patchesStrategicMerge ?? []),
      ...[...(k.secretGenerator ?? []), ...(k.configMapGenerator ?? [])].flatMap((g) =>
        (g.files ?? []).map((f) => (f.includes('=') ? f.split('=', 2)[1] : f)),
      ),
    ];
    for (const r of refs) used.add(path.resolve(d, r));
  }
  const walk = (d) =>
    fs
      .readdirSync(d, { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.resolve(d, e.name)]));
  return walk(dir).filter((f) => /\.ya?ml$/.test(f) && !used.has(f));
}

// --- the server's flags -------------------------------------------------------------------------

// The value of --name=value in args (the server's flags all take that form here).
export function flag(args, name) {
  const a = args.findLast((x) => x.startsWith(`--${name}=`));
  return a === undefined ? undefined : a.slice(name.length + 3);
}
const serverDefaults = {
  shutdown_grace_seconds: 20,
  max_inflight_mib: 1024,
  max_message_mib: 64,
  compute_threads: 0,
};
export function numericFlag(args, name) {
  const v = flag(args, name);
  return v === undefined ? serverDefaults[name] : Number(v);
}
export function listenAddress(args) {
  const listen = flag(args, 'listen') ?? '127.0.0.1:50051';
  const colon = listen.lastIndexOf(':');
  return { host: listen.slice(0, colon), port: Number(listen.slice(colon + 1)) };
}
// The host a flag binds `port` with (--x=HOST:PORT), '' for --x=PORT, undefined if none does.
export function hostServing(args, port) {
  for (const a of args) {
    const v = a.slice(a.indexOf('=') + 1);
    if (a.startsWith('--') && v === String(port)) return '';
    if (a.startsWith('--') && v.endsWith(`:${port}`)) return v.slice(0, v.lastIndexOf(':'));
  }
  return undefined;
}
// What the server may hold, from its flags (the arithmetic is in deploy/k8s/deployment.yaml):
// itself, admitted work (a lone request always gets in, counted 3x) and gRPC's resource quota
// (inflight + 2 x 4 x message).
export function memoryBudgetMiB(args) {
  const inflight = numericFlag(args, 'max_inflight_mib'),
    message = numericFlag(args, 'max_message_mib');
  return 64 + Math.max(inflight, 3 * message) + inflight + 8 * message;
}
const units = {
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  m: 1e-3,
  '': 1,
};
export function quantityMiB(q) {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m|)$/.exec(String(q));
  if (!m) throw new Error(`cannot read memory quantity ${q}`);
  return (Number(m[1]) * units[m[2]]) / 2 ** 20;
}

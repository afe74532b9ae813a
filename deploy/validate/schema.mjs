// One object on its own: its schema (kubernetes-models' JSON schemas: types, required fields,
// enums) and fields Kubernetes does not know (@kubernetes/client-node's attribute lists: what
// `kubectl apply --validate=strict` rejects). ServiceMonitor's schema comes from
// @kubernetes-models/prometheus-operator; for it, unknown fields are checked at the top level and
// in metadata only (client-node has no types for custom resources).
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { modules, require } from './load.mjs';

// On Node 20 the package root of @kubernetes/client-node fails to load; its models load alone.
const k8sModels = await import(
  pathToFileURL(path.join(modules, '@kubernetes/client-node/dist/gen/models/all.js'))
);

async function model(doc) {
  if (typeof doc.apiVersion !== 'string' || typeof doc.kind !== 'string') return undefined;
  if (doc.apiVersion.startsWith('monitoring.coreos.com/')) {
    const file = path.join(
      modules,
      '@kubernetes-models/prometheus-operator',
      doc.apiVersion,
      `${doc.kind}.js`,
    );
    return fs.existsSync(file) ? (await import(pathToFileURL(file)))[doc.kind] : undefined;
  }
  const file = path.join(modules, 'kubernetes-models', ...doc.apiVersion.split('/'), `${doc.kind}.js`);
  return fs.existsSync(file) ? require(file)[doc.kind] : undefined;
}

export async function schemaProblems(doc) {
  const Model = await model(doc);
  if (!Model) return [`no schema for ${doc.apiVersion} ${doc.kind}`];
  try {
    new Model(doc).validate();
    return [];
  } catch (e) {
    return (e.errors ?? [e]).map((x) => {
      const allowed = x.params?.allowedValues ? ` ${JSON.stringify(x.params.allowedValues)}` : '';
      return `${x.instancePath ?? ''} ${x.message}${allowed}`;
    });
  }
}

// Walks `value` as client-node type `type`: a key that is not an attribute of its type is a field
// Kubernetes does not know (a typo, or a field from another version).
function walk(value, type, where, out) {
  if (value == null) return out;
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (!Array.isArray(value)) out.push(`${where}: expected a list (${type})`);
    else value.forEach((v, i) => walk(v, m[1], `${where}[${i}]`, out));
  } else if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    for (const [k, v] of Object.entries(value)) walk(v, m[1], `${where}.${k}`, out);
  } else if (k8sModels[type]?.getAttributeTypeMap) {
    if (typeof value !== 'object' || Array.isArray(value)) {
      out.push(`${where}: expected an object (${type})`);
      return out;
    }
    const attributes = new Map(k8sModels[type].getAttributeTypeMap().map((a) => [a.baseName, a.type]));
    for (const [k, v] of Object.entries(value)) {
      if (!attributes.has(k)) out.push(`${where}.${k}: unknown field (${type} has no "${k}")`);
      else walk(v, attributes.get(k), `${where}.${k}`, out);
    }
  }
  return out;
}

export function unknownFields(doc) {
  if (typeof doc.apiVersion !== 'string') return ['apiVersion is missing'];
  const version = doc.apiVersion.split('/').pop();
  const type = version[0].toUpperCase() + version.slice(1) + doc.kind;
  if (k8sModels[type]) return walk(doc, type, doc.kind, []);
  const out = [];
  for (const k of Object.keys(doc)) {
    if (!['apiVersion', 'kind', 'metadata', 'spec'].includes(k)) out.push(`${doc.kind}.${k}: unknown field`);
  }
  return walk(doc.metadata, 'V1ObjectMeta', `${doc.kind}.metadata`, out);
}

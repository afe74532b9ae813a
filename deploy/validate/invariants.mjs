// What the objects must satisfy together for gradserve-server to run and be reached as intended:
// ports, probes and Services agree; the pods are hardened and have resource limits that cover
// the server's memory budget; the grace period covers the drain; the token component mounts
// what --token_file reads; the HPA, PDB, NetworkPolicy and ServiceMonitor find what they target.
// Values that are a matter of choice (replica counts, thresholds) are not checked.
// Each check is {name, problems}: no problems means it passes.
import fs from 'node:fs';
import path from 'node:path';
import { flag, hostServing, listenAddress, memoryBudgetMiB, numericFlag, quantityMiB } from './load.mjs';

const need = (ok, problem) => (ok ? [] : [problem]);
const selects = (selector, labels) =>
  Object.keys(selector ?? {}).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

export function serverArgs(container) {
  return [...(container.command ?? []).slice(1), ...(container.args ?? [])];
}

export function k8sInvariants(objects) {
  const of = (kind) => objects.filter((o) => o.kind === kind);
  if (of('Deployment').length !== 1) {
    return [{ name: 'exactly one Deployment', problems: [`found ${of('Deployment').length}`] }];
  }
  const checks = [];
  // check(name, fn): fn returns a list of problems; a throw (a field of the wrong type, say) is one.
  const check = (name, fn) => {
    let problems;
    try {
      problems = fn();
    } catch (e) {
      problems = [`cannot check: ${e.message}`];
    }
    checks.push({ name, problems });
  };
  const [deployment] = of('Deployment');
  const pod = deployment.spec?.template ?? {};
  const spec = pod.spec ?? {};
  const labels = pod.metadata?.labels;
  const containers = spec.containers ?? [];
  const container = containers.find((c) => c.name === 'gradserve') ?? containers[0] ?? {};
  const args = serverArgs(container);
  const ports = container.ports ?? [];
  // A port reference (a name or a number) resolved to a declared containerPort, or undefined.
  const declared = (ref) =>
    ports.find((p) => p.containerPort === ref || (p.name !== undefined && p.name === ref));
  const { host, port } = listenAddress(args);
  const reachable = (h) => ['', '0.0.0.0', '[::]'].includes(h);

  check('Deployment selector matches its pod template labels', () =>
    need(selects(deployment.spec?.selector?.matchLabels, labels), 'it does not'),
  );
  check(`container ports: the server listens on each, reachable (gRPC --listen=${host}:${port})`, () => [
    ...need(declared(port), `--listen port ${port} is not a declared containerPort`),
    ...ports.flatMap((p) => {
      const h = p.containerPort === port ? host : hostServing(args, p.containerPort);
      if (h === undefined) return [`containerPort ${p.containerPort} (${p.name}): no flag serves it`];
      return need(reachable(h), `port ${p.containerPort} is bound to ${h}: unreachable from outside`);
    }),
  ]);
  check('readiness and liveness probes target declared container ports', () =>
    ['readinessProbe', 'livenessProbe'].flatMap((p) => {
      const probe = container[p];
      const ref = probe?.grpc?.port ?? probe?.httpGet?.port ?? probe?.tcpSocket?.port;
      return probe ? need(declared(ref), `${p} port ${ref} is not a declared containerPort`) : [`no ${p}`];
    }),
  );
  check('a gRPC readiness probe names a service the server reports as SERVING', () => {
    const service = container.readinessProbe?.grpc?.service ?? '';
    return need(['', 'gradserve.v1.GradientService'].includes(service), `service ${service}`);
  });
  check('hardening: non-root uid, read-only root, no privilege escalation, no capabilities', () => {
    const ps = spec.securityContext ?? {},
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
    const grace = spec.terminationGracePeriodSeconds ?? 30,
      drain = numericFlag(args, 'shutdown_grace_seconds');
    return need(grace >= sleep + drain + 1, `grace ${grace} s < preStop ${sleep} s + drain ${drain} s + 1 s`);
  });
  check('resources: requests and limits; memory covers the budget, --compute_threads the CPUs', () => {
    const r = container.resources ?? {};
    const missing = ['requests', 'limits'].flatMap((k) =>
      ['cpu', 'memory'].flatMap((x) => need(r[k]?.[x] !== undefined, `no ${x} in ${k}`)),
    );
    if (missing.length) return missing;
    const budget = memoryBudgetMiB(args),
      cpu = String(r.limits.cpu),
      threads = numericFlag(args, 'compute_threads');
    const cores = cpu.endsWith('m') ? parseFloat(cpu) / 1000 : Number(cpu);
    return [
      ...need(quantityMiB(r.limits.memory) >= budget, `memory limit ${r.limits.memory} < ${budget} MiB`),
      ...need(
        threads >= 1 && threads <= Math.ceil(cores),
        `--compute_threads=${threads} with a CPU limit of ${cpu} (0 means the node's cores)`,
      ),
    ];
  });

  const services = of('Service');
  for (const s of services) {
    check(`Service ${s.metadata?.name} selects the pods; each port reaches a container port`, () => [
      ...need(selects(s.spec?.selector, labels), 'selector does not match the pod labels'),
      ...(s.spec?.ports ?? []).flatMap((p) =>
        need(
          declared(p.targetPort ?? p.port),
          `port ${p.name}: targetPort ${p.targetPort ?? p.port} is not declared`,
        ),
      ),
    ]);
  }
  check('a headless Service (clusterIP: None) for dns:/// round-robin clients', () =>
    need(
      services.some((s) => s.spec?.clusterIP === 'None'),
      'none',
    ),
  );
  const hpas = of('HorizontalPodAutoscaler');
  for (const hpa of hpas) {
    check(`HorizontalPodAutoscaler ${hpa.metadata?.name} scales the Deployment on CPU`, () => {
      const ref = hpa.spec?.scaleTargetRef ?? {};
      return [
        ...need(
          ref.kind === 'Deployment' && ref.name === deployment.metadata?.name,
          `scaleTargetRef ${JSON.stringify(ref)}`,
        ),
        ...need(
          (hpa.spec?.metrics ?? []).some((m) => m.resource?.name === 'cpu'),
          'no cpu metric',
        ),
        ...need((hpa.spec?.minReplicas ?? 1) <= hpa.spec?.maxReplicas, 'minReplicas > maxReplicas'),
      ];
    });
  }
  for (const pdb of of('PodDisruptionBudget')) {
    check(`PodDisruptionBudget ${pdb.metadata?.name} selects the pods and lets a drain proceed`, () => {
      const min = hpas[0]?.spec?.minReplicas ?? deployment.spec?.replicas ?? 1;
      const s = pdb.spec ?? {};
      const allows =
        s.maxUnavailable !== undefined ? ![0, '0%'].includes(s.maxUnavailable) : Number(s.minAvailable) < min;
      return [
        ...need(selects(s.selector?.matchLabels, labels), 'selector does not match the pod labels'),
        ...need(allows, `with ${min} replicas no pod may ever be evicted`),
      ];
    });
  }
  for (const np of of('NetworkPolicy')) {
    check(`NetworkPolicy ${np.metadata?.name} selects the pods, names declared ports, lets gRPC in`, () => {
      const s = np.spec ?? {};
      const selector = s.podSelector?.matchLabels ?? {};
      const ingress = s.ingress ?? [];
      const admits = (ref) =>
        ingress.some(
          (rule) =>
            !rule.ports || rule.ports.some((p) => p.port === undefined || declared(p.port) === declared(ref)),
        );
      return [
        ...need(
          Object.keys(selector).length === 0 || selects(selector, labels),
          'podSelector does not match the pod labels',
        ),
        ...ingress.flatMap((rule) =>
          (rule.ports ?? []).flatMap((p) =>
            need(p.port === undefined || declared(p.port), `ingress port ${p.port} is not declared`),
          ),
        ),
        ...need(
          !(s.policyTypes ?? ['Ingress']).includes('Ingress') || admits(port),
          `no ingress rule admits gRPC port ${port}`,
        ),
      ];
    });
  }
  for (const sm of of('ServiceMonitor')) {
    check(`ServiceMonitor ${sm.metadata?.name} scrapes /metrics on a named port of one Service`, () => {
      const targets = services.filter((s) => selects(sm.spec?.selector?.matchLabels, s.metadata?.labels));
      const endpoints = sm.spec?.endpoints ?? [];
      return [
        ...need(
          targets.length > 0,
          `selector ${JSON.stringify(sm.spec?.selector)} matches no Service's labels`,
        ),
        ...need(endpoints.length > 0, 'no endpoints'),
        ...endpoints.flatMap((e) => {
          // prometheus-operator scrapes the named port of every selected Service that has one.
          const having = targets.filter((s) => (s.spec?.ports ?? []).some((p) => p.name === e.port));
          const names = having.map((s) => s.metadata?.name).join(', ');
          return [
            ...need(e.port !== undefined, 'an endpoint names no port'),
            ...need(e.port === undefined || having.length > 0, `no selected Service has a port ${e.port}`),
            ...need(
              having.length <= 1,
              `Services ${names} all have port ${e.port}: each pod is scraped ${having.length} times`,
            ),
            ...need((e.path ?? '/metrics') === '/metrics', `path ${e.path}: the server serves /metrics`),
          ];
        }),
      ];
    });
  }
  const tokenFile = flag(args, 'token_file');
  if (tokenFile !== undefined) {
    check(`--token_file ${tokenFile} is a key of a Secret mounted read-only, readable by the server`, () => {
      const dirOf = (m) => m.mountPath.replace(/\/$/, '');
      const mount = (container.volumeMounts ?? []).find((m) => tokenFile.startsWith(`${dirOf(m)}/`));
      if (!mount) return ['no volumeMount contains it'];
      const volume = spec.volumes?.find((v) => v.name === mount.name);
      const secret = objects.find(
        (o) => o.kind === 'Secret' && o.metadata?.name === volume?.secret?.secretName,
      );
      const key = tokenFile.slice(dirOf(mount).length + 1);
      const mode = volume?.secret?.defaultMode ?? 0o644;
      return [
        ...need(mount.readOnly, 'mount is not readOnly'),
        ...need(secret, `volume ${mount.name} is not a Secret defined here`),
        ...need(!secret || key in { ...secret.data, ...secret.stringData }, `Secret has no key ${key}`),
        // Readable by everyone, or by the server's group: the pod's fsGroup owns secret volumes.
        ...need(
          (mode & 0o004) !== 0 || ((mode & 0o040) !== 0 && spec.securityContext?.fsGroup !== undefined),
          `mode ${mode.toString(8)} is not readable by the server`,
        ),
      ];
    });
  }
  return checks;
}

export function composeInvariants(doc, file) {
  const service = doc.services?.gradserve;
  if (!service) return [{ name: `${file}: a service gradserve`, problems: ['missing'] }];
  const args = service.command ?? [];
  const { host, port } = listenAddress(args);
  const m = /^(\d+)(s|m)?$/.exec(String(service.stop_grace_period ?? '10s'));
  const stopGrace = m ? Number(m[1]) * (m[2] === 'm' ? 60 : 1) : NaN;
  const memLimit = String(service.mem_limit ?? '0').replace(
    /([kmg])$/i,
    (u) => ({ k: 'Ki', m: 'Mi', g: 'Gi' })[u.toLowerCase()],
  );
  const dockerfile = path.join(
    path.dirname(file),
    service.build?.context ?? '.',
    service.build?.dockerfile ?? 'Dockerfile',
  );
  return [
    {
      name: 'compose: builds an existing Dockerfile, publishes the port the server listens on',
      problems: [
        ...need(fs.existsSync(dockerfile), `no ${dockerfile}`),
        ...need(
          ['0.0.0.0', '[::]'].includes(host),
          `--listen host ${host} is unreachable from outside the container`,
        ),
        ...need(
          (service.ports ?? []).some((p) => String(p).endsWith(`:${port}`)),
          `port ${port} not published`,
        ),
      ],
    },
    {
      name: 'compose: stop_grace_period covers --shutdown_grace_seconds + 1 s',
      problems: need(
        stopGrace >= numericFlag(args, 'shutdown_grace_seconds') + 1,
        `${service.stop_grace_period}`,
      ),
    },
    {
      name: "compose: read-only root, capabilities dropped, memory limit covers the server's budget",
      problems: [
        ...need(service.read_only === true, 'read_only is not true'),
        ...need(service.cap_drop?.includes('ALL'), 'cap_drop lacks ALL'),
        ...need(
          quantityMiB(memLimit) >= memoryBudgetMiB(args),
          `mem_limit ${service.mem_limit} < ${memoryBudgetMiB(args)} MiB`,
        ),
      ],
    },
  ];
}

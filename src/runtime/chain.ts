import { execFile, findExecutable } from '../util/exec.js';

// A minimal runtime: executes a network configuration list the way libcni does
// (plugins in order on ADD with prevResult chaining, reverse order on DEL), so the
// demo, tests and benchmarks drive plugins exactly as containerd or podman would.
export interface ConfList {
  cniVersion: string;
  name: string;
  plugins: Array<Record<string, unknown>>;
  [key: string]: unknown;
}

export interface Attachment {
  containerId: string;
  netns: string;
  ifname: string;
  cniArgs?: string;
  // Per-capability runtime values (portMappings, ips, mac...).
  capabilities?: Record<string, unknown>;
}

export interface RunnerOptions {
  pluginDirs: string[];
  // A command prefix such as ['nsenter', '--net=/run/netns/node'] to run plugins in
  // another network namespace.
  wrapper?: string[];
  env?: NodeJS.ProcessEnv;
}

export interface PluginFailure {
  plugin: string;
  code: number;
  msg: string;
  details?: string;
}

export class ChainError extends Error {
  constructor(readonly failure: PluginFailure) {
    super(`${failure.plugin}: ${failure.msg}${failure.details ? ` (${failure.details})` : ''} [code ${failure.code}]`);
  }
}

export type Json = Record<string, unknown>;

// What one plugin of the list reads on stdin, as libcni builds it.
export function pluginConfig(list: ConfList, plugin: Json, attachment: Attachment | undefined, prevResult: unknown): Json {
  const config: Json = { ...plugin, cniVersion: list.cniVersion, name: list.name };
  const capabilities = plugin['capabilities'] as Record<string, boolean> | undefined;
  if (capabilities && attachment?.capabilities) {
    const runtimeConfig: Json = {};
    for (const [key, value] of Object.entries(attachment.capabilities)) if (capabilities[key]) runtimeConfig[key] = value;
    if (Object.keys(runtimeConfig).length > 0) config['runtimeConfig'] = runtimeConfig;
  }
  if (prevResult !== undefined) config['prevResult'] = prevResult;
  return config;
}

export class ChainRunner {
  constructor(private readonly options: RunnerOptions) {}

  invoke(type: string, command: string, config: Json, attachment?: Attachment): Json | undefined {
    const plugin = findExecutable(type, this.options.pluginDirs);
    if (!plugin) throw new ChainError({ plugin: type, code: 7, msg: `plugin ${type} not found in ${this.options.pluginDirs.join(':')}` });
    const env: NodeJS.ProcessEnv = { ...process.env, ...this.options.env, CNI_COMMAND: command, CNI_PATH: this.options.pluginDirs.join(':') };
    if (attachment) {
      env['CNI_CONTAINERID'] = attachment.containerId;
      env['CNI_NETNS'] = attachment.netns;
      env['CNI_IFNAME'] = attachment.ifname;
      if (attachment.cniArgs) env['CNI_ARGS'] = attachment.cniArgs;
    }
    const wrapper = this.options.wrapper ?? [];
    const file = wrapper[0] ?? plugin;
    const args = wrapper.length > 0 ? [...wrapper.slice(1), plugin] : [];
    const outcome = execFile(file, args, { input: JSON.stringify(config), env });
    if (outcome.status !== 0) {
      let parsed: Partial<PluginFailure> = {};
      try {
        parsed = JSON.parse(outcome.stdout) as Partial<PluginFailure>;
      } catch {
        parsed = { code: outcome.status, msg: `exit status ${outcome.status}`, details: `${outcome.stdout}${outcome.stderr}`.trim() };
      }
      const failure: PluginFailure = { plugin: type, code: parsed.code ?? outcome.status, msg: parsed.msg ?? 'failed' };
      if (parsed.details) failure.details = parsed.details;
      throw new ChainError(failure);
    }
    return outcome.stdout.trim() === '' ? undefined : (JSON.parse(outcome.stdout) as Json);
  }

  add(list: ConfList, attachment: Attachment): Json {
    let result: Json | undefined;
    for (const plugin of list.plugins) {
      result = this.invoke(plugin['type'] as string, 'ADD', pluginConfig(list, plugin, attachment, result), attachment);
    }
    return result ?? {};
  }

  check(list: ConfList, attachment: Attachment, cached: Json): void {
    for (const plugin of list.plugins) this.invoke(plugin['type'] as string, 'CHECK', pluginConfig(list, plugin, attachment, cached), attachment);
  }

  del(list: ConfList, attachment: Attachment, cached?: Json): void {
    for (const plugin of [...list.plugins].reverse()) {
      this.invoke(plugin['type'] as string, 'DEL', pluginConfig(list, plugin, attachment, cached), attachment);
    }
  }

  gc(list: ConfList, valid: Array<{ containerId: string; ifname: string }>): void {
    const attachments = valid.map((entry) => ({ containerID: entry.containerId, ifname: entry.ifname }));
    for (const plugin of list.plugins) {
      const config = { ...pluginConfig(list, plugin, undefined, undefined), 'cni.dev/valid-attachments': attachments };
      this.invoke(plugin['type'] as string, 'GC', config);
    }
  }

  status(list: ConfList): void {
    for (const plugin of list.plugins) this.invoke(plugin['type'] as string, 'STATUS', pluginConfig(list, plugin, undefined, undefined));
  }
}

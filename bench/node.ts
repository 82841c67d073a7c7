import { execa } from 'execa';
import { Sandbox } from '../src/sandbox/sandbox.js';

// A sandbox "node" plus its container namespaces. The growth section needs a thousand
// of them, so they are added and removed with one `ip -batch` per hundred instead of
// one process each. Every live node is tracked, so Ctrl-C can still remove it.
export interface Container {
  name: string;
  path: string;
}

const live = new Set<BenchNode>();
// Set once cleanup has begun (Ctrl-C): a section still running must not add nodes.
let closed = false;
const batchSize = 100;

export class BenchNode {
  private readonly containers: Container[] = [];

  private constructor(readonly sandbox: Sandbox) {}

  static async create(): Promise<BenchNode> {
    if (closed) throw new Error('the benchmark is stopping');
    const sandbox = await Sandbox.create();
    if (closed) {
      await sandbox.destroy();
      throw new Error('the benchmark is stopping');
    }
    const node = new BenchNode(sandbox);
    live.add(node);
    return node;
  }

  get path(): string {
    return this.sandbox.nodePath;
  }

  async addContainers(count: number): Promise<Container[]> {
    const added: Container[] = [];
    while (added.length < count) {
      const batch: Container[] = [];
      for (let i = 0; i < Math.min(batchSize, count - added.length); i += 1) {
        const name = `trc-${this.sandbox.id}-b${this.containers.length + 1}`;
        const container = { name, path: `/run/netns/${name}` };
        // Tracked before it exists: a half-applied batch is still cleaned up.
        this.containers.push(container);
        batch.push(container);
      }
      await execa('ip', ['-batch', '-'], { input: batch.map((container) => `netns add ${container.name}\n`).join('') });
      added.push(...batch);
    }
    return added;
  }

  // Runs a command in the node namespace and returns its standard output.
  async inNode(file: string, args: readonly string[]): Promise<string> {
    return (await this.sandbox.inNode(file, args, { reject: false })).stdout;
  }

  // Removes the containers' namespaces, then the node; returns how long that took.
  async destroy(): Promise<number> {
    const started = performance.now();
    if (!live.delete(this)) return 0;
    for (let i = 0; i < this.containers.length; i += batchSize) {
      const batch = this.containers.slice(i, i + batchSize);
      // -force: keep going past a namespace that was never created.
      await execa('ip', ['-force', '-batch', '-'], { input: batch.map((container) => `netns del ${container.name}\n`).join(''), reject: false });
    }
    this.containers.length = 0;
    await this.sandbox.destroy();
    return performance.now() - started;
  }
}

export async function destroyAllNodes(): Promise<void> {
  closed = true;
  for (const node of [...live]) await node.destroy();
}

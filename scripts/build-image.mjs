// make image: dist/image/trestle.tar, the container image of conf/kubernetes/trestle.yaml
// as a docker-archive (manifest.json, the image config, one gzip layer), which
// `kind load image-archive`, `ctr images import` and `docker load` take. No Docker
// engine runs on these machines, so the archive is assembled here.
//
// The layer holds, besides what is ours (/usr/local/bin/trestle: the single
// executable; trestle-client: the native client; trestle.build), what they need at run
// time and nothing else: the single executable is this machine's Node binary, linked
// against glibc, so its libraries and the dynamic loader as `ldd` lists them; and the
// programs the daemon runs on the node's behalf (ip, nft, conntrack, nsenter) with
// theirs. Paths are reproduced as they are here, symlinks included (/lib -> usr/lib),
// so every binary finds its loader and libraries where it was built to.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, createWriteStream, lstatSync, mkdirSync, openSync, readFileSync, readSync, readlinkSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, posix } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

const outDir = 'dist/image';
const output = join(outDir, 'trestle.tar');
const version = JSON.parse(readFileSync('package.json', 'utf8')).version;
const imageName = `localhost/trestle:${version}`;
// The programs the daemon spawns (src/host): links and addresses, the ruleset, UDP
// conntrack entries of released host ports, commands inside a container's namespace.
const runtimePrograms = ['ip', 'nft', 'conntrack', 'nsenter'];
const searchPath = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];
const mtime = Number(process.env.SOURCE_DATE_EPOCH ?? 0);
const architectures = { x64: 'amd64', arm64: 'arm64' };

function needed(file, make) {
  try {
    if (statSync(file).isFile()) return file;
  } catch {
    // Reported below.
  }
  throw new Error(`${file} is missing: run ${make}`);
}

function findProgram(name) {
  for (const dir of searchPath) {
    try {
      if (statSync(join(dir, name)).isFile()) return join(dir, name);
    } catch {
      // Not in this directory.
    }
  }
  throw new Error(`${name} is not installed here, and the image needs it (scripts/install-deps.sh installs it)`);
}

// The libraries and loader a dynamic executable loads, as `ldd` resolves them here.
function sharedObjects(executable) {
  const listing = execFileSync('ldd', [executable], { encoding: 'utf8' });
  const paths = [];
  for (const line of listing.split('\n')) {
    const match = /^\s*(?:\S+ => )?(\/\S+) \(0x[0-9a-f]+\)$/.exec(line);
    if (match) paths.push(match[1]);
    else if (/=> not found/.test(line)) throw new Error(`${executable}: ${line.trim()}`);
  }
  return paths;
}

// The layer's entries by path (no leading slash): directories, files (by the host file
// to copy) and symlinks.
const entries = new Map();

function addDirectory(path, mode = 0o755) {
  if (path === '' || entries.has(path)) return;
  addDirectory(dirname(path) === '.' ? '' : dirname(path));
  entries.set(path, { type: 'directory', mode });
}

function addFile(path, source, mode) {
  addDirectory(dirname(path));
  entries.set(path, { type: 'file', source, mode, size: statSync(source).size });
}

function addSymlink(path, target) {
  addDirectory(dirname(path));
  entries.set(path, { type: 'symlink', mode: 0o777, target });
}

// A host path as the host has it: each symlink on the way (a directory's included)
// becomes the same symlink in the layer, and what it points to is added too.
function addHostPath(hostPath) {
  const parts = hostPath.split('/').filter(Boolean);
  let resolved = '';
  for (let i = 0; i < parts.length; i++) {
    const current = `${resolved}/${parts[i]}`;
    const stat = lstatSync(current);
    if (stat.isSymbolicLink()) {
      const target = readlinkSync(current);
      addSymlink(current.slice(1), target);
      const rest = parts.slice(i + 1).join('/');
      const followed = posix.normalize(isAbsolute(target) ? target : posix.join(posix.dirname(current), target));
      addHostPath(rest === '' ? followed : `${followed}/${rest}`);
      return;
    }
    if (i === parts.length - 1) {
      if (stat.isDirectory()) addDirectory(current.slice(1));
      else addFile(current.slice(1), current, stat.mode & 0o777);
    }
    resolved = current;
  }
}

const trestle = needed('dist/sea/trestle', 'make sea');
const client = needed('dist/client/trestle-client', 'make build');
const build = needed('dist/trestle.build', 'make build');
addFile('usr/local/bin/trestle', trestle, 0o755);
addFile('usr/local/bin/trestle-client', client, 0o755);
addFile('usr/local/bin/trestle.build', build, 0o644);
const native = needed('dist/koffi.node', 'make build');
addFile('usr/local/bin/koffi.node', native, 0o644);
const hostExecutables = [trestle, native, ...runtimePrograms.map(findProgram)];
for (const program of runtimePrograms) addHostPath(findProgram(program));
for (const executable of hostExecutables) for (const object of sharedObjects(executable)) addHostPath(object);
// Runtimes hand the plugins /var/run/netns/cni-… paths; the DaemonSet mounts the
// node's /run/netns. Node.js wants a writable /tmp.
addDirectory('run');
addDirectory('var');
addSymlink('var/run', '../run');
addDirectory('tmp', 0o1777);

// ustar headers: every field ASCII, numbers in octal, the checksum over the header
// with its own field read as spaces.
function header(name, { type, mode = 0o644, size = 0, target = '' }) {
  const block = Buffer.alloc(512);
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 155);
    [prefix, name] = [name.slice(0, cut), name.slice(cut + 1)];
    if (cut < 0 || Buffer.byteLength(name) > 100) throw new Error(`path too long for a tar header: ${prefix}/${name}`);
  }
  const octal = (value, width) => value.toString(8).padStart(width - 1, '0');
  block.write(name, 0);
  block.write(octal(mode, 8), 100);
  block.write(octal(0, 8), 108);
  block.write(octal(0, 8), 116);
  block.write(octal(size, 12), 124);
  block.write(octal(mtime, 12), 136);
  block.write(' '.repeat(8), 148);
  block.write({ file: '0', symlink: '2', directory: '5' }[type], 156);
  block.write(target, 157);
  block.write('ustar\0' + '00', 257);
  block.write('root', 265);
  block.write('root', 297);
  block.write(prefix, 345);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${octal(sum, 7)}\0 `, 148);
  return block;
}

function* fileContents(source, size) {
  const fd = openSync(source, 'r');
  try {
    const chunk = Buffer.alloc(1 << 20);
    let left = size;
    while (left > 0) {
      const read = readSync(fd, chunk, 0, Math.min(chunk.length, left), null);
      if (read === 0) throw new Error(`${source} shrank while it was being read`);
      left -= read;
      yield Buffer.from(chunk.subarray(0, read));
    }
  } finally {
    closeSync(fd);
  }
  if (size % 512 !== 0) yield Buffer.alloc(512 - (size % 512));
}

function* tarStream(members) {
  for (const member of members) {
    yield header(member.name, member);
    if (member.type === 'file') yield* member.source !== undefined ? fileContents(member.source, member.size) : [member.data, Buffer.alloc((512 - (member.size % 512)) % 512)];
  }
  yield Buffer.alloc(1024);
}

function hashing(hash) {
  return new Transform({
    transform(chunk, _encoding, done) {
      hash.update(chunk);
      done(null, chunk);
    },
  });
}

mkdirSync(outDir, { recursive: true });
const layerFile = join(outDir, 'layer.tar.gz.tmp');
const archiveFile = `${output}.tmp`;
try {
  // Sorted, so that a directory comes before what it holds and a rebuild of the same
  // inputs gives the same digests.
  const members = [...entries.keys()].sort().map((path) => {
    const entry = entries.get(path);
    return { ...entry, name: entry.type === 'directory' ? `${path}/` : path };
  });
  const diffId = createHash('sha256');
  const digest = createHash('sha256');
  await pipeline(Readable.from(tarStream(members)), hashing(diffId), createGzip({ level: 6 }), hashing(digest), createWriteStream(layerFile));
  const layer = { diffId: `sha256:${diffId.digest('hex')}`, hex: digest.digest('hex'), size: statSync(layerFile).size };
  const uncompressed = members.reduce((total, member) => total + (member.size ?? 0), 0);

  const created = new Date(mtime * 1000).toISOString();
  const config = Buffer.from(
    JSON.stringify({
      architecture: architectures[process.arch] ?? process.arch,
      os: 'linux',
      created,
      config: {
        Entrypoint: ['/usr/local/bin/trestle'],
        Env: [`PATH=${searchPath.join(':')}`],
        WorkingDir: '/',
        Labels: { 'org.opencontainers.image.title': 'trestle', 'org.opencontainers.image.version': version },
      },
      rootfs: { type: 'layers', diff_ids: [layer.diffId] },
      history: [{ created, created_by: 'scripts/build-image.mjs (make image)' }],
    }),
  );
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  const layerName = `${layer.hex}/layer.tar`;
  const manifest = Buffer.from(JSON.stringify([{ Config: configName, RepoTags: [imageName], Layers: [layerName] }]));
  const archive = [
    { name: `${layer.hex}/`, type: 'directory', mode: 0o755 },
    { name: layerName, type: 'file', source: layerFile, size: layer.size },
    { name: configName, type: 'file', data: config, size: config.length },
    { name: 'manifest.json', type: 'file', data: manifest, size: manifest.length },
  ];
  await pipeline(Readable.from(tarStream(archive)), createWriteStream(archiveFile));
  // Renamed into place: a reader (kind load) never finds half an archive.
  renameSync(archiveFile, output);
  const megabytes = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
  process.stdout.write(
    `${output}: ${imageName}, one layer of ${members.length} entries, ${megabytes(uncompressed)} of files (${megabytes(layer.size)} compressed), archive ${megabytes(statSync(output).size)}\n` +
      `load it with: kind load image-archive ${output}   or: ctr -n k8s.io images import ${output}\n`,
  );
} finally {
  rmSync(layerFile, { force: true });
  rmSync(archiveFile, { force: true });
}

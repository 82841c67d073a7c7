import type { Plugin } from '../cni/skel.js';
import { bridgePlugin } from '../plugins/bridge/plugin.js';
import { hostLocalPlugin } from '../plugins/host-local/plugin.js';
import { portmapPlugin } from '../plugins/portmap/plugin.js';

// The plugins a client may name (the executable's name it was called by).
export const plugins: Readonly<Record<string, Plugin>> = {
  'trestle-bridge': bridgePlugin,
  'trestle-host-local': hostLocalPlugin,
  'trestle-portmap': portmapPlugin,
};

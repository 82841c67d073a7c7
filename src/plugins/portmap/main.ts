import { runPlugin } from '../../cni/skel.js';
import { portmapPlugin } from './plugin.js';

await runPlugin(portmapPlugin);

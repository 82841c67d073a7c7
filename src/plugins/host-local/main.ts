import { runPlugin } from '../../cni/skel.js';
import { hostLocalPlugin } from './plugin.js';

await runPlugin(hostLocalPlugin);

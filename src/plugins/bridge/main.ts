import { runPlugin } from '../../cni/skel.js';
import { bridgePlugin } from './plugin.js';

await runPlugin(bridgePlugin);

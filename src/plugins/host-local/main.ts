import { runPlugin } from '../../launcher/oneshot.js';

// The implementation loads only for commands that need it: VERSION, which runtimes
// call on every plugin they load, answers from the protocol layer alone.
void runPlugin(() => import('./plugin.js').then((module) => module.hostLocalPlugin), 'trestle-host-local');

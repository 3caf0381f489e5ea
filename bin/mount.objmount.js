#!/usr/bin/env node
// mount(8)'s helper for fstab entries of type objmount (see src/cli/mount-helper.ts).
import { main } from '../dist/cli/mount-helper.js';

main();

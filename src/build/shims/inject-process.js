export { process } from 'process';

// The hello body, shared by the fetch-form function and the native Node target.
export const HELLO_BODY = 'Hello World\n';

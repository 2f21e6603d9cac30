export declare const HELLO_BODY: string;

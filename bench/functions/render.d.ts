export declare const DEFAULT_ITEMS: number;
export declare function renderHtml(username: string, items: number): string;
export declare function htmlParams(searchParams: URLSearchParams): { username: string; items: number };

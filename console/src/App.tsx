import { useEffect, useRef, useState } from 'react';
import { getToken, onUnauthorized, setToken } from './api.ts';
import { SignIn } from './SignIn.tsx';
import { Functions } from './Functions.tsx';
import { FunctionDetail } from './FunctionDetail.tsx';
import { Queues } from './Queues.tsx';
import { ServiceMap } from './ServiceMap.tsx';
import { Usage } from './Usage.tsx';
import { BASE, Link, routeOf, useLocation } from './router.tsx';

const NAV = [
  [`${BASE}/functions`, 'Functions', 'functions'],
  [`${BASE}/queues`, 'Queues', 'queues'],
  [`${BASE}/map`, 'Service map', 'map'],
  [`${BASE}/usage`, 'Usage', 'usage'],
] as const;

export function App() {
  const [signedIn, setSignedIn] = useState(() => getToken() !== null);
  const [expired, setExpired] = useState(false);
  const url = useLocation();
  const route = routeOf(url);
  const section = route[0] ?? 'functions';

  // A new page (not a new tab of the same function) moves focus to its heading, as a page load would.
  const pageKey = `${section}/${section === 'functions' ? (route[1] ?? '') : ''}`;
  const firstPage = useRef(true);
  useEffect(() => {
    if (firstPage.current) {
      firstPage.current = false;
      return;
    }
    const heading = document.querySelector<HTMLElement>('main h1');
    if (heading) {
      heading.tabIndex = -1;
      heading.focus();
    }
  }, [pageKey]);

  useEffect(
    () =>
      onUnauthorized(() => {
        setToken(null);
        setExpired(true);
        setSignedIn(false);
      }),
    [],
  );

  if (!signedIn) {
    return (
      <>
        {expired ? <p className="error" role="alert">The token was refused; sign in again.</p> : null}
        <SignIn onSignedIn={() => { setExpired(false); setSignedIn(true); }} />
      </>
    );
  }

  let page;
  if (section === 'functions' && route[1]) page = <FunctionDetail name={route[1]} tab={route[2]} invocation={url.searchParams.get('id') ?? undefined} />;
  else if (section === 'queues') page = <Queues />;
  else if (section === 'map') page = <ServiceMap />;
  else if (section === 'usage') page = <Usage />;
  else page = <Functions />;

  return (
    <>
      <a className="skip" href="#main">Skip to content</a>
      <header>
        <span className="brand">Continuum</span>
        <nav aria-label="Console">
          {NAV.map(([href, label, id]) => (
            <Link key={id} href={href} aria-current={section === id ? 'page' : undefined}>{label}</Link>
          ))}
        </nav>
        <button type="button" className="signout" onClick={() => { setToken(null); setSignedIn(false); }}>Sign out</button>
      </header>
      <main id="main" tabIndex={-1}>{page}</main>
    </>
  );
}

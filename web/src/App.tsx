import { lazy, Suspense } from 'react';
import { NavLink, Route, Routes } from 'react-router';
import { AuthProvider, RequireAuth, useAuth } from './auth/AuthProvider';
import { Loading } from './components/ui';
import { Browse } from './pages/Browse';
import { ListingDetail } from './pages/ListingDetail';
import { Login, Signup } from './pages/Login';

const Sell = lazy(() => import('./pages/Sell'));
const EditListing = lazy(() => import('./pages/EditListing'));
const CartPage = lazy(() => import('./pages/CartPage'));
const Addresses = lazy(() => import('./pages/Addresses'));
const Orders = lazy(() => import('./pages/Orders'));
const OrderPage = lazy(() => import('./pages/OrderPage'));
const Sales = lazy(() => import('./pages/Sales'));

function Nav() {
  const { session, logout } = useAuth();
  return (
    <header className="top">
      <nav aria-label="Main">
        <NavLink to="/" end className="brand">
          Marketplace
        </NavLink>
        {session ? (
          <>
            <NavLink to="/sell">Sell</NavLink>
            <NavLink to="/cart">Cart</NavLink>
            <NavLink to="/addresses">Addresses</NavLink>
            <NavLink to="/orders">Orders</NavLink>
            <NavLink to="/sales">Sales</NavLink>
            <span className="spacer" />
            <span className="who" data-testid="whoami">
              {session.user?.username ?? ''}
            </span>
            <button type="button" className="link" onClick={() => void logout()}>
              Log out
            </button>
          </>
        ) : (
          <>
            <span className="spacer" />
            <NavLink to="/login">Log in</NavLink>
            <NavLink to="/signup">Sign up</NavLink>
          </>
        )}
      </nav>
    </header>
  );
}

function Private({ children }: { children: React.ReactNode }) {
  return <RequireAuth>{children}</RequireAuth>;
}

function NotFound() {
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        <NavLink to="/">Back to the listings</NavLink>
      </p>
    </section>
  );
}

export function App() {
  return (
    <AuthProvider>
      <Nav />
      <main>
        <Suspense fallback={<Loading />}>
          <Routes>
            <Route path="/" element={<Browse />} />
            <Route path="/listings/:id" element={<ListingDetail />} />
            <Route path="/login" element={<Login />} />
            <Route path="/signup" element={<Signup />} />
            <Route path="/sell" element={<Private><Sell /></Private>} />
            <Route path="/sell/:id" element={<Private><EditListing /></Private>} />
            <Route path="/cart" element={<Private><CartPage /></Private>} />
            <Route path="/addresses" element={<Private><Addresses /></Private>} />
            <Route path="/orders" element={<Private><Orders /></Private>} />
            <Route path="/orders/:id" element={<Private><OrderPage /></Private>} />
            <Route path="/sales" element={<Private><Sales /></Private>} />
            <Route path="*" element={<NotFound />} />
          </Routes>
        </Suspense>
      </main>
    </AuthProvider>
  );
}

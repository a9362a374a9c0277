-- One completed checkout's writes, as the api and the worker send them (development payment
-- mode, where the PaymentIntent is known without a network call), for pgbench -M prepared:
--   1. admission records the job (`db::admission::record`);
--   2. the worker's first delivery reads the job and its listings (`db::checkout::queued_checkout`);
--   3. one statement locks the listing, claims the job and writes the reservation, the order,
--      its line, the emptied cart and the finished job (`db::checkout::claim_and_create_order`).
-- The statements are those functions' SQL with their parameters bound to this run's rows (the
-- buyer and the listing picked at random by subqueries, so picking costs no round trip); keep
-- them equal when that SQL changes. Reads that only refuse or answer (authentication, the
-- admission's view, job polls) are not in it: this is the floor of what a checkout must send.
\set b 1 + :client_id + :clients * random(0, :buyers / :clients - 1)
\set l random(1, :listings)
INSERT INTO jobs (id, kind, owner_id, payload, idempotency_key, request_fingerprint,
                  max_attempts, trace_context)
SELECT bench_uuid7(), 'checkout', b.id,
       jsonb_build_object('buyer_username', 'ceiling-buyer', 'shipping_address', :address::jsonb,
                          'lines', jsonb_build_array(jsonb_build_object(
                              'listing_id', (SELECT id FROM bench_ceiling_listings WHERE n = :l),
                              'quantity', 1))),
       gen_random_uuid()::text, 'ceiling', 5, NULL
FROM bench_ceiling_buyers b
WHERE b.n = :b
  AND (SELECT count(*) FROM orders WHERE buyer_id = b.id AND status = 'pending_payment') < 1000
ON CONFLICT DO NOTHING
RETURNING id AS job_id, owner_id AS buyer_id, bench_uuid7() AS order_id \gset
SELECT j.owner_id, j.payload, l.id AS listing_id, l.seller_id, l.seller_username, l.title,
       l.price_cents, l.currency, l.available, l.is_active
FROM jobs j
LEFT JOIN LATERAL (
    SELECT l.id, l.seller_id, u.username AS seller_username, l.title, l.price_cents,
           l.currency, l.quantity - l.reserved AS available, l.is_active
    FROM listings l JOIN users u ON u.id = l.seller_id
    WHERE l.id = ANY(ARRAY(
        SELECT CASE WHEN e->>'listing_id' ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                    THEN (e->>'listing_id')::uuid END
        FROM jsonb_array_elements(CASE jsonb_typeof(j.payload->'lines')
                                  WHEN 'array' THEN j.payload->'lines' ELSE '[]' END) e))) l
  ON true
WHERE j.id = :job_id::uuid AND j.kind = 'checkout' AND j.status = 'queued' AND j.attempts = 0
ORDER BY l.id \gset
WITH locked AS (
     SELECT l.id, l.quantity - l.reserved AS available, l.is_active, l.seller_id,
            l.price_cents, l.currency
     FROM listings l WHERE l.id = ANY(ARRAY[:listing_id::uuid]) ORDER BY l.id FOR UPDATE),
 unchanged AS (
     SELECT count(*) = 1 AS ok
     FROM locked k
     JOIN unnest(ARRAY[:listing_id::uuid], ARRAY[1], ARRAY[:price_cents::bigint]) AS v(id, quantity, price) ON v.id = k.id
     WHERE k.is_active AND k.seller_id <> :buyer_id::uuid AND k.available >= v.quantity
       AND k.price_cents = v.price AND k.currency = 'usd'),
 claimed AS (
     UPDATE jobs SET status = 'succeeded', attempts = attempts + 1, retry_at = NULL,
            lease_expires_at = NULL, finished_at = now(), error_code = NULL, error_message = NULL,
            result = jsonb_build_object('order_id', :order_id::uuid,
                                        'client_secret', 'pi_dev_' || :order_id || '_secret_dev')
     WHERE id = :job_id::uuid AND kind = 'checkout' AND status = 'queued' AND attempts = 0
       AND (SELECT ok FROM unchanged)
     RETURNING id, kind, owner_id, status, attempts, max_attempts, payload, result, error_code,
               error_message, request_fingerprint, created_at, updated_at),
 reserve AS (
     UPDATE listings l SET reserved = l.reserved + v.quantity
     FROM unnest(ARRAY[:listing_id::uuid], ARRAY[1]) AS v(id, quantity)
     WHERE l.id = v.id AND EXISTS (SELECT 1 FROM claimed)),
 new_order AS (
     INSERT INTO orders (id, buyer_id, buyer_username, status, total_cents, currency,
                         shipping_address, checkout_job_id, expires_at,
                         payment_intent_id, client_secret)
     SELECT :order_id::uuid, :buyer_id::uuid, 'ceiling-buyer', 'pending_payment', :price_cents::bigint,
            'usd', :address::jsonb, :job_id::uuid, now() + make_interval(secs => 86400::float8),
            'pi_dev_' || :order_id, 'pi_dev_' || :order_id || '_secret_dev'
     WHERE EXISTS (SELECT 1 FROM claimed)),
 new_lines AS (
     INSERT INTO order_lines (id, order_id, listing_id, seller_id, seller_username, title,
                              unit_price_cents, currency, quantity, image_key)
     SELECT line_id, :order_id::uuid, listing_id, seller_id, seller_username, title, price, 'usd',
            quantity,
            (SELECT i.thumb_key FROM images i
             WHERE i.listing_id = t.listing_id AND i.status = 'ready'
             ORDER BY i.position, i.id LIMIT 1)
     FROM unnest(ARRAY[bench_uuid7()], ARRAY[:listing_id::uuid], ARRAY[:seller_id::uuid],
                 ARRAY[:seller_username::text], ARRAY[:title::text], ARRAY[:price_cents::bigint],
                 ARRAY[1])
          AS t(line_id, listing_id, seller_id, seller_username, title, price, quantity)
     WHERE EXISTS (SELECT 1 FROM claimed)),
 emptied AS (
     DELETE FROM cart_lines
     WHERE user_id = :buyer_id::uuid AND listing_id = ANY(ARRAY[:listing_id::uuid])
       AND EXISTS (SELECT 1 FROM claimed))
SELECT id FROM claimed;

-- Images: listing pictures and profile pictures. The api validates an upload, stores its
-- original (metadata stripped) in object storage and writes the row `pending` with its
-- `process_image` job in one transaction; the worker makes the thumbnails and sets it `ready`.
-- Only `ready` images are shown to anyone but their owner.
CREATE TABLE images (
    id                  uuid PRIMARY KEY,
    owner_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose             text NOT NULL CONSTRAINT images_purpose_known
                        CHECK (purpose IN ('listing', 'avatar')),
    -- NULL for an avatar, and for a listing image whose listing was purged (an orphan the
    -- image sweep removes with its files).
    listing_id          uuid REFERENCES listings (id) ON DELETE SET NULL,
    -- 0 is the main image; the gallery follows the order.
    position            integer NOT NULL DEFAULT 0 CONSTRAINT images_position_nonnegative CHECK (position >= 0),
    status              text NOT NULL DEFAULT 'pending' CONSTRAINT images_status_known
                        CHECK (status IN ('pending', 'ready', 'failed')),
    -- The format sniffed from the bytes.
    format              text NOT NULL CONSTRAINT images_format_known CHECK (format IN ('jpeg', 'png', 'webp')),
    byte_size           integer NOT NULL CONSTRAINT images_byte_size_positive CHECK (byte_size > 0),
    -- The EXIF orientation (1-8) read before the metadata was stripped; the thumbnails apply it.
    orientation         smallint NOT NULL DEFAULT 1 CONSTRAINT images_orientation_known
                        CHECK (orientation BETWEEN 1 AND 8),
    original_key        text NOT NULL,
    -- Set when ready: the upright dimensions and the two WebP renditions.
    width               integer CONSTRAINT images_width_positive CHECK (width > 0),
    height              integer CONSTRAINT images_height_positive CHECK (height > 0),
    thumb_key           text,
    large_key           text,
    job_id              uuid REFERENCES jobs (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT images_avatar_has_no_listing CHECK (purpose = 'listing' OR listing_id IS NULL),
    CONSTRAINT images_ready_has_renditions CHECK (
        status <> 'ready'
        OR (width IS NOT NULL AND height IS NOT NULL AND thumb_key IS NOT NULL AND large_key IS NOT NULL)
    )
);
CREATE INDEX images_listing_idx ON images (listing_id, position) WHERE listing_id IS NOT NULL;
CREATE INDEX images_owner_idx ON images (owner_id);
CREATE INDEX images_orphan_idx ON images (created_at) WHERE purpose = 'listing' AND listing_id IS NULL;
CREATE TRIGGER images_set_updated_at BEFORE UPDATE ON images
    FOR EACH ROW EXECUTE FUNCTION set_updated_at();

ALTER TABLE users ADD COLUMN avatar_image_id uuid REFERENCES images (id) ON DELETE SET NULL;

-- The main image's thumbnail at purchase time, like the title and the price. Its file outlives
-- the image: deleting an image or sweeping orphans keeps files an order line still names.
ALTER TABLE order_lines ADD COLUMN image_key text;
CREATE INDEX order_lines_image_key_idx ON order_lines (image_key) WHERE image_key IS NOT NULL;

import type { components, paths } from './schema';

/** Shapes of the api, always taken from the OpenAPI document. */
export type Schemas = components['schemas'];
export type Listing = Schemas['Listing'];
export type ListingPage = Schemas['ListingPage'];
export type Cart = Schemas['Cart'];
export type CartItem = Schemas['CartItem'];
export type Address = Schemas['Address'];
export type Job = Schemas['Job'];
export type Order = Schemas['Order'];
export type OrderLine = Schemas['OrderLine'];
export type TokenResponse = Schemas['TokenResponse'];
export type PrivateUser = Schemas['PrivateUser'];
export type ErrorBody = Schemas['ErrorBody'];
export type ClientConfig = Schemas['ClientConfig'];
export type Balance = Schemas['Balance'];
export type CreateListing = Schemas['CreateListing'];
export type UpdateListing = Schemas['UpdateListing'];
export type CreateAddress = Schemas['CreateAddress'];
export type Image = Schemas['Image'];
export type ImageStatus = Schemas['ImageStatus'];

export type ListingSort = NonNullable<
  NonNullable<paths['/api/v1/listings']['get']['parameters']['query']>['sort']
>;
export type { paths, components };

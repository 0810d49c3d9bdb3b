// The Mastodon REST entities this client reads, as documented at docs.joinmastodon.org
// (only the fields it uses; servers may send more).

export interface CustomEmoji {
  shortcode: string;
  url: string;
  static_url: string;
}

export interface Field {
  name: string;
  value: string;
  verified_at: string | null;
}

export interface Account {
  id: string;
  username: string;
  acct: string;
  url: string;
  display_name: string;
  note: string;
  avatar: string;
  avatar_static: string;
  header: string;
  locked: boolean;
  bot: boolean;
  created_at: string;
  statuses_count: number;
  followers_count: number;
  following_count: number;
  fields: Field[];
  emojis: CustomEmoji[];
  source?: { note: string; privacy?: string; language?: string | null; fields?: Field[] };
}

export type Visibility = "public" | "unlisted" | "private" | "direct";

export interface MediaAttachment {
  id: string;
  type: "image" | "gifv" | "video" | "audio" | "unknown";
  url: string | null;
  preview_url: string | null;
  remote_url?: string | null;
  description: string | null;
  blurhash?: string | null;
}

export interface PollOption {
  title: string;
  votes_count: number | null;
}

export interface Poll {
  id: string;
  expires_at: string | null;
  expired: boolean;
  multiple: boolean;
  votes_count: number;
  options: PollOption[];
  voted?: boolean;
  own_votes?: number[];
}

export interface Mention {
  id: string;
  username: string;
  acct: string;
  url: string;
}

export interface Tag {
  name: string;
  url: string;
  following?: boolean;
}

export interface Status {
  id: string;
  uri: string;
  url: string | null;
  created_at: string;
  edited_at?: string | null;
  account: Account;
  content: string;
  visibility: Visibility;
  sensitive: boolean;
  spoiler_text: string;
  media_attachments: MediaAttachment[];
  mentions: Mention[];
  tags: Tag[];
  emojis: CustomEmoji[];
  reblogs_count: number;
  favourites_count: number;
  replies_count: number;
  in_reply_to_id: string | null;
  in_reply_to_account_id: string | null;
  reblog: Status | null;
  poll: Poll | null;
  language: string | null;
  favourited?: boolean;
  reblogged?: boolean;
  bookmarked?: boolean;
}

export interface StatusSource {
  id: string;
  text: string;
  spoiler_text: string;
}

export interface Context {
  ancestors: Status[];
  descendants: Status[];
}

export interface Relationship {
  id: string;
  following: boolean;
  followed_by: boolean;
  requested: boolean;
  blocking: boolean;
  muting: boolean;
}

export type NotificationType =
  | "mention"
  | "status"
  | "reblog"
  | "follow"
  | "follow_request"
  | "favourite"
  | "poll"
  | "update"
  | string;

export interface Notification {
  id: string;
  type: NotificationType;
  created_at: string;
  account: Account;
  status?: Status | null;
}

export interface SearchResults {
  accounts: Account[];
  statuses: Status[];
  hashtags: Tag[];
}

export interface Instance {
  domain: string;
  title: string;
  description: string;
  languages: string[];
  configuration: {
    urls?: { streaming?: string | null };
    statuses?: { max_characters?: number; max_media_attachments?: number; characters_reserved_per_url?: number };
    media_attachments?: { supported_mime_types?: string[]; description_limit?: number };
    polls?: {
      max_options?: number;
      max_characters_per_option?: number;
      min_expiration?: number;
      max_expiration?: number;
    };
  };
  registrations: { enabled: boolean; approval_required: boolean; message: string | null; url?: string | null };
  rules?: { id: string; text: string }[];
}

export interface Application {
  id?: string;
  name: string;
  client_id: string;
  client_secret: string;
  redirect_uri?: string;
  redirect_uris?: string[];
}

export interface Token {
  access_token: string;
  token_type: string;
  scope: string;
  created_at: number;
}

export interface Marker {
  last_read_id: string;
  version: number;
  updated_at: string;
}

/**
 * Checks of the names a request puts into a registry URL (the distribution
 * spec's grammar): repositories, tags and digests. Each fails with
 * InvalidArgument before anything is sent.
 */
import { invalidArgument } from '../../common/errors';

const REPOSITORY = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const DIGEST = /^sha256:[a-f0-9]{64}$/;
/** Longest repository name accepted (the distribution spec's practical bound). */
export const MAX_REPOSITORY_LENGTH = 255;

/** Whether `reference` is a sha256 digest (nyd accepts no other algorithm). */
export function isDigest(reference: string): boolean {
  return DIGEST.test(reference);
}

export function checkRepository(repo: string): void {
  if (repo.length > MAX_REPOSITORY_LENGTH || !REPOSITORY.test(repo)) throw invalidArgument(`invalid repository name ${JSON.stringify(repo)}`);
}

export function checkDigest(digest: string): void {
  if (!isDigest(digest)) throw invalidArgument(`unsupported or malformed digest ${JSON.stringify(digest)} (nyd accepts sha256 only)`);
}

/** A tag or a digest. */
export function checkReference(reference: string): void {
  if (!TAG.test(reference) && !isDigest(reference)) throw invalidArgument(`invalid tag or digest ${JSON.stringify(reference)}`);
}

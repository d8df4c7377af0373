//! The repository contract: what every durable backend must do, written
//! against [`Repositories`] alone (no driver, no SQL), from the traits' doc
//! comments in `rap_storage::repo`.
//!
//! Each case is an `async fn case(repos: &Repositories)` in the module of
//! its trait and gets a store of its own, fresh and migrated. A backend joins
//! the suite with a factory `async fn() -> Backend` and one line:
//!
//! ```ignore
//! crate::contract::contract_tests!(backend);
//! ```
//!
//! which generates one `#[tokio::test]` per case (see `contract_sqlite.rs`).
//!
//! Conventions every case keeps:
//! - Timestamps have whole microseconds (what SQLite's text form and
//!   PostgreSQL's `timestamptz` keep), so records read back compare equal.
//! - A fresh store may hold seed rows (SQLite's migrations create a
//!   `default` organization), so listings over everything check inclusion.
//! - Orders the docs do not promise are not asserted: such listings are
//!   compared sorted.

use futures_util::future::BoxFuture;
use rap_storage::Repositories;

pub mod audit;
pub mod auth;
pub mod identity_sources;
pub mod installation;
pub mod organizations;
pub mod races;
pub mod resources;
pub mod session_leases;
pub mod sessions;
pub mod support;
pub mod users;
pub mod workers;

/// One store under test: its repositories and how to shut it down.
pub struct Backend {
    pub repos: Repositories,
    teardown: BoxFuture<'static, ()>,
}

impl Backend {
    /// `teardown` runs after the case passed (it should also own whatever
    /// must live as long as the store, such as its temporary directory).
    pub fn new(repos: Repositories, teardown: BoxFuture<'static, ()>) -> Self {
        Self { repos, teardown }
    }

    pub async fn finish(self) {
        drop(self.repos);
        self.teardown.await;
    }
}

/// Generates one `#[tokio::test]` per contract case, each on a fresh store
/// from `$backend` (an `async fn() -> Backend` in scope where this is used).
macro_rules! contract_tests {
    ($backend:path) => {
        $crate::contract::contract_tests!(@cases $backend;
            installation {
                a_migrated_store_is_ready,
                the_installation_is_created_once,
                bootstrap_writes_owner_grant_organization_membership_and_audit,
                a_second_bootstrap_is_refused_and_writes_nothing,
                bootstrap_joins_an_existing_organization_with_its_slug,
                a_failed_bootstrap_leaves_the_installation_unbootstrapped,
            }
            users {
                users_round_trip_by_id_and_email,
                a_taken_email_is_a_conflict_in_any_case,
                users_list_in_id_order_and_page,
                a_users_memberships_name_their_organizations,
            }
            auth {
                a_login_opens_a_session_with_its_refresh_token,
                a_login_reuses_only_the_users_own_open_device,
                rotation_replaces_the_token_and_extends_the_session,
                a_reused_refresh_token_is_detected_and_its_family_revoked,
                rotation_in_an_expired_session_is_session_closed,
                a_session_is_revoked_once,
                device_trust_is_set_only_on_the_users_own_open_device,
                revoking_a_device_revokes_its_open_sessions,
                disabling_a_user_revokes_every_open_session_of_theirs,
            }
            organizations {
                organizations_round_trip_and_list_by_scope,
                a_taken_slug_is_a_conflict_on_create_and_update,
                update_changes_only_the_given_fields,
                memberships_are_added_updated_and_deleted,
                the_last_active_owner_cannot_be_demoted_disabled_or_removed,
                an_organization_without_an_owner_may_still_be_managed,
            }
            identity_sources {
                sources_round_trip_with_and_without_sealed_secrets,
                sealed_not_under_lists_the_sources_under_other_keys,
                reseal_is_conditional_on_the_previous_key,
                mappings_are_unique_per_external_id,
            }
            resources {
                resources_round_trip_and_list_by_scope,
                update_replaces_the_mutable_fields,
                a_deleted_resource_is_gone_with_its_secret,
                a_secret_is_put_replaced_and_read_back,
                reencryption_is_conditional_on_the_previous_key,
            }
            sessions {
                create_places_sessions_on_the_least_loaded_online_worker,
                create_without_an_online_worker_with_room_is_no_capacity,
                a_transition_applies_only_from_its_from_states,
                transitions_record_their_reasons_and_times,
                a_transition_ends_the_controller_and_opens_the_next,
                viewers_open_and_end_beside_the_controller,
                open_sessions_and_count_open_leave_out_ended_ones,
                detached_before_finds_sessions_by_their_last_detach,
                list_shows_owners_their_own_and_managers_everything,
            }
            session_leases {
                release_gives_the_workers_slot_back,
                surrender_releases_the_lease_and_forgets_the_worker,
                renew_extends_the_open_lease_from_the_transition,
                acquire_reserves_a_lease_on_a_worker_with_room,
                acquire_without_capacity_leaves_the_session_untouched,
            }
            workers {
                register_worker_keeps_the_id_of_a_kind_and_name,
                mark_workers_offline_takes_every_worker_offline,
                heartbeats_extend_leases_and_never_backwards,
                heartbeats_without_an_open_lease_are_returned,
                expired_leases_are_the_open_ones_past_their_time,
            }
            audit {
                an_event_round_trips_every_field,
                events_page_newest_first_with_the_cursor,
                events_filter_by_organization_and_session,
                changes_that_did_not_happen_leave_no_audit_event,
            }
            races {
                concurrent_rotations_of_one_token_rotate_it_once,
                concurrent_creates_never_exceed_capacity,
                concurrent_transitions_from_one_state_apply_once,
                owners_demoting_each_other_at_once_keep_one_owner,
                concurrent_reseals_from_one_key_apply_once,
                concurrent_bootstraps_write_one_owner,
            }
        );
    };
    (@cases $backend:path; $($module:ident { $($case:ident),+ $(,)? })+) => {
        $(
            mod $module {
                #[allow(unused_imports)]
                use super::*;

                $(
                    #[tokio::test]
                    async fn $case() {
                        let backend = $backend().await;
                        $crate::contract::$module::$case(&backend.repos).await;
                        backend.finish().await;
                    }
                )+
            }
        )+
    };
}

pub(crate) use contract_tests;

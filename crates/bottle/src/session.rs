//! What `bottlectl` does for a container, as a library: the engine the
//! settings select, the agent layout they name (`agent`, `agent_image`)
//! and whether the guard stands in front (`guard`). A library user who
//! sets `agent = "sidecar"` gets the sidecar, as the CLI does.

use crate::{select, SelectError, Selection, Settings};
use bottle_config::{AgentChoice, GuardChoice};
use bottle_ssh::sidecar::{self, AgentLayout};
use bottle_ssh::{
    DeprovisionReport, Error as SshError, Options, Plan, ProvisionReport, Target, VerifyReport,
};

/// The agent layout the settings name.
pub fn agent_layout(settings: &Settings) -> AgentLayout {
    match settings.agent {
        AgentChoice::Bottle => AgentLayout::Bottle,
        AgentChoice::Sidecar => AgentLayout::Sidecar {
            image: settings.agent_image.clone(),
        },
    }
}

/// An engine and where provision puts things there, from the settings.
pub struct Session {
    pub sel: Selection,
    pub layout: AgentLayout,
    pub target: Target,
    /// Setting `guard = "off"`.
    pub unguarded: bool,
}

impl Session {
    /// Select the engine (`container` steers `auto` to the engine that has
    /// it) and take the layout, target and guard from `settings`.
    pub async fn open(
        settings: &Settings,
        container: Option<&str>,
    ) -> Result<Session, SelectError> {
        Ok(Session::with(select(settings, container).await?, settings))
    }

    /// A session on an engine already selected.
    pub fn with(sel: Selection, settings: &Settings) -> Session {
        Session {
            sel,
            layout: agent_layout(settings),
            target: settings.target(),
            unguarded: settings.guard == GuardChoice::Off,
        }
    }

    /// `opts` with the settings' `guard`.
    pub fn options<'a>(&self, opts: &Options<'a>) -> Options<'a> {
        Options {
            unguarded: self.unguarded || opts.unguarded,
            ..*opts
        }
    }

    /// Provision `container` in the session's layout: the agent in the
    /// bottle, or in its sidecar (made or replaced through the engine's
    /// admin side).
    pub async fn provision(
        &self,
        container: &str,
        plan: &Plan,
        opts: &Options<'_>,
    ) -> Result<ProvisionReport, SshError> {
        provision_in(
            &self.sel,
            &self.layout,
            container,
            plan,
            &self.target,
            &self.options(opts),
        )
        .await
    }

    /// Verify `container` in the session's layout.
    pub async fn verify(
        &self,
        container: &str,
        plan: &Plan,
        opts: &Options<'_>,
    ) -> Result<VerifyReport, SshError> {
        verify_in(
            &self.sel,
            &self.layout,
            container,
            plan,
            &self.target,
            &self.options(opts),
        )
        .await
    }

    /// Deprovision `container` in the session's layout (its sidecar too,
    /// when it is this bottle's); the report carries the guard's records.
    pub async fn deprovision(&self, container: &str) -> Result<DeprovisionReport, SshError> {
        deprovision_in(&self.sel, &self.layout, container, &self.target).await
    }

    /// In the `sidecar` layout: remove the sidecars of bottles removed
    /// without `deprovision`; their names. Nothing in the `bottle` layout.
    pub async fn remove_orphaned_sidecars(&self) -> Result<Vec<String>, SshError> {
        match self.layout {
            AgentLayout::Sidecar { .. } => sidecar::remove_orphans(self.sel.admin.as_ref()).await,
            _ => Ok(Vec::new()),
        }
    }
}

/// [`Session::provision`] with its parts given.
pub async fn provision_in(
    sel: &Selection,
    layout: &AgentLayout,
    container: &str,
    plan: &Plan,
    target: &Target,
    opts: &Options<'_>,
) -> Result<ProvisionReport, SshError> {
    match layout {
        AgentLayout::Sidecar { image } => {
            sidecar::provision(
                sel.admin.as_ref(),
                container,
                plan,
                target,
                opts,
                image.as_deref(),
            )
            .await
        }
        _ => bottle_ssh::provision_with(sel.runtime.as_ref(), container, plan, target, opts).await,
    }
}

/// [`Session::verify`] with its parts given.
pub async fn verify_in(
    sel: &Selection,
    layout: &AgentLayout,
    container: &str,
    plan: &Plan,
    target: &Target,
    opts: &Options<'_>,
) -> Result<VerifyReport, SshError> {
    match layout {
        AgentLayout::Sidecar { .. } => {
            sidecar::verify(sel.admin.as_ref(), container, plan, target, opts).await
        }
        _ => bottle_ssh::verify_with(sel.runtime.as_ref(), container, plan, target, opts).await,
    }
}

/// [`Session::deprovision`] with its parts given.
pub async fn deprovision_in(
    sel: &Selection,
    layout: &AgentLayout,
    container: &str,
    target: &Target,
) -> Result<DeprovisionReport, SshError> {
    match layout {
        AgentLayout::Sidecar { .. } => {
            sidecar::deprovision(sel.admin.as_ref(), container, target).await
        }
        _ => bottle_ssh::deprovision(sel.runtime.as_ref(), container, target).await,
    }
}

//! Auto Scaling groups and launch templates (issue 22): not implemented yet.

use async_trait::async_trait;
use release_core::model::error::Internal;
use release_core::model::ids::AppName;
use release_core::model::pipeline::LbTarget;
use release_core::ports::{
    Activity, Attachment, AutoScaling, CapacityChange, DeletedVersions, Group, GroupSpec, LaunchTemplate, LaunchTemplateId, LaunchTemplates, Process,
    ScalingPolicy, ScheduledAction, TemplateSpec, TemplateVersion, TemplateVersionInfo,
};
use release_core::{Error, Result};

use crate::memory::MemoryCloud;

fn later() -> Error {
    Internal::Invariant { what: "asg ports are not implemented yet".into() }.into()
}

#[async_trait]
impl LaunchTemplates for MemoryCloud {
    async fn template(&self, _name: &str) -> Result<Option<LaunchTemplate>> { Err(later()) }
    async fn app_templates(&self, _app: &AppName) -> Result<Vec<LaunchTemplate>> { Err(later()) }
    async fn ensure_template(&self, _name: &str, _tags: &[(String, String)]) -> Result<LaunchTemplate> { Err(later()) }
    async fn create_version(&self, _t: &LaunchTemplateId, _spec: &TemplateSpec, _token: &str) -> Result<TemplateVersion> { Err(later()) }
    async fn versions(&self, _t: &LaunchTemplateId) -> Result<Vec<TemplateVersionInfo>> { Err(later()) }
    async fn delete_versions(&self, _t: &LaunchTemplateId, _v: &[TemplateVersion]) -> Result<DeletedVersions> { Err(later()) }
}

#[async_trait]
impl AutoScaling for MemoryCloud {
    async fn create(&self, _spec: &GroupSpec) -> Result<()> { Err(later()) }
    async fn app_groups(&self, _app: &AppName) -> Result<Vec<Group>> { Err(later()) }
    async fn attach(&self, _g: &str, _t: &[LbTarget]) -> Result<()> { Err(later()) }
    async fn detach(&self, _g: &str, _t: &[LbTarget]) -> Result<()> { Err(later()) }
    async fn attachments(&self, _g: &str) -> Result<Vec<Attachment>> { Err(later()) }
    async fn set_capacity(&self, _g: &str, _c: &CapacityChange) -> Result<()> { Err(later()) }
    async fn suspend(&self, _g: &str, _p: &[Process]) -> Result<()> { Err(later()) }
    async fn resume(&self, _g: &str, _p: &[Process]) -> Result<()> { Err(later()) }
    async fn put_cpu_policy(&self, _g: &str, _n: &str, _p: u8) -> Result<()> { Err(later()) }
    async fn policies(&self, _g: &str) -> Result<Vec<ScalingPolicy>> { Err(later()) }
    async fn scheduled_actions(&self, _g: &str) -> Result<Vec<ScheduledAction>> { Err(later()) }
    async fn activities(&self, _g: &str, _l: u32) -> Result<Vec<Activity>> { Err(later()) }
    async fn delete(&self, _g: &str) -> Result<()> { Err(later()) }
}

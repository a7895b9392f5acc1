"""The node agent: an asyncio shell around the pure core (watchers, cache, coalescing runner, health, metrics)."""

from ipvsctl.agent.config import AgentConfig, agent_config
from ipvsctl.agent.node import NodeAgent

__all__ = ["AgentConfig", "NodeAgent", "agent_config"]

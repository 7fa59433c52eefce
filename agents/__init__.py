"""Anything that acts: scripted agents, LLM agents (agents.llm), RL adapters (agents.rl)."""

from agents.base import Agent, Decision, EpisodeContext
from agents.scripted import FixedOptionAgent, IdealTypeAgent, RandomAgent

__all__ = ["Agent", "Decision", "EpisodeContext", "FixedOptionAgent", "IdealTypeAgent", "RandomAgent"]

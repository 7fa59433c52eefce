"""Anything that acts: scripted agents, LLM agents (agents.llm), RL adapters (agents.rl), all built
from one spec syntax (agents.registry)."""

from agents.base import ALL_GAMES, DILEMMA_GAMES, GAME_KINDS, Agent, Decision, EpisodeContext, UnsupportedGame
from agents.scripted import CooperationAgent, FixedPositionAgent, RandomAgent, TitForTatAgent, UtilityAgent

__all__ = [
    "ALL_GAMES",
    "DILEMMA_GAMES",
    "GAME_KINDS",
    "Agent",
    "CooperationAgent",
    "Decision",
    "EpisodeContext",
    "FixedPositionAgent",
    "RandomAgent",
    "TitForTatAgent",
    "UnsupportedGame",
    "UtilityAgent",
]
